"""Offline audio-caption corpus from freely licensed Debian packages.

``clapkit data build offline --out DIR`` downloads packages with ``apt-get download``, unpacks them
with ``dpkg-deb -x`` (nothing is installed), and turns their recordings into FLAC clips with
captions and labels taken from upstream metadata (:mod:`.captions`), licences from each
package's ``debian/copyright`` (:mod:`.licences`) and a split chosen per source package
(:mod:`.sources`). :mod:`.build` runs it, cached and resumable.
"""
from .audio import ProcessingParams
from .build import BuildOptions, build, format_report
from .sources import RESERVED, SOURCES, ReservedPackageError

__all__ = ["BuildOptions", "ProcessingParams", "RESERVED", "ReservedPackageError", "SOURCES", "build",
           "format_report"]
