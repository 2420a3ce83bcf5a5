"""Fetching and unpacking Debian packages without installing them (``apt-get download`` +
``dpkg-deb -x``). The candidate version's SHA256 from the package index is the cache key."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..manifest import file_sha256
from .sources import refuse_reserved


class ArchiveError(Exception):
    """A package that cannot be looked up, downloaded or unpacked; the message says why."""


@dataclass(frozen=True)
class PackageInfo:
    package: str
    version: str
    sha256: str


class Archive(Protocol):
    def lookup(self, packages: list[str]) -> dict[str, PackageInfo]:
        """Candidate version and SHA256 of each package; packages not in the archive are left out."""


    def download(self, package: str, dest: Path) -> Path: ...


def _run(command: list[str], cwd: Path | None = None, check: bool = True) -> str:
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise ArchiveError(f"{command[0]} not found (needs a Debian/Ubuntu system)") from None
    if check and done.returncode != 0:
        message = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise ArchiveError(f"{' '.join(command[:2])} failed: {message[-1] if message else done.returncode}")
    return done.stdout



class AptArchive:
    """The system's configured Debian/Ubuntu archive."""

    def lookup(self, packages: list[str]) -> dict[str, PackageInfo]:
        for package in packages:
            refuse_reserved(package)
        # One apt-cache call for all: each call costs about a second. Unknown names only make it
        # exit non-zero; the known ones are still printed.
        text = _run(["apt-cache", "show", "--no-all-versions", *packages], check=False)
        found = {}
        for paragraph in text.split("\n\n"):
            fields = dict(line.split(": ", 1) for line in paragraph.splitlines() if ": " in line and line[0] != " ")
            if {"Package", "Version", "SHA256"} <= fields.keys() and fields["Package"] in packages:
                found[fields["Package"]] = PackageInfo(fields["Package"], fields["Version"], fields["SHA256"])
        return found

    def download(self, package: str, dest: Path) -> Path:
        """Download the candidate .deb into ``dest``; returns its path."""
        refuse_reserved(package)
        dest.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=dest) as tmp:
            _run(["apt-get", "download", "-q", package], cwd=Path(tmp))
            debs = list(Path(tmp).glob("*.deb"))
            if len(debs) != 1:
                raise ArchiveError(f"apt-get download {package} produced {len(debs)} files")
            target = dest / debs[0].name
            shutil.move(debs[0], target)
        return target


def fetch(archive: Archive, info: PackageInfo, cache: Path) -> Path:
    """The package's .deb in ``cache``, downloaded only when no verified copy is there."""
    target = cache / f"{info.package}_{info.sha256[:16]}.deb"
    if target.is_file() and file_sha256(target) == info.sha256:
        return target
    downloaded = archive.download(info.package, cache / "incoming")
    if file_sha256(downloaded) != info.sha256:
        downloaded.unlink()
        raise ArchiveError(f"{info.package}: downloaded file does not match the archive's SHA256")
    downloaded.replace(target)
    return target


def extract(deb: Path, dest: Path) -> None:
    """Unpack a .deb's files into ``dest`` (no maintainer scripts run, nothing is installed)."""
    dest.mkdir(parents=True, exist_ok=True)
    _run(["dpkg-deb", "-x", str(deb), str(dest)])
