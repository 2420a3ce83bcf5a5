"""The manifest format shared by every dataset adapter and corpus builder.

JSON Lines, one clip per line::

    {"path": "clips/x.flac", "captions": ["a dog barks"], "labels": ["dog"], "split": "train",
     "source": "debian:megaglest-data@3.13.0-3", "licence": "CC-BY-SA-3.0", "duration": 2.5,
     "sample_rate": 44100, "sha256": "…"}

``path`` is relative to the manifest's folder (absolute paths are allowed for data read in place).
``captions`` and ``labels`` may be empty lists; ``split`` is a split or fold name (``"fold1"``).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from clapkit.errors import ManifestError

FIELDS = ("path", "captions", "labels", "split", "source", "licence", "duration", "sample_rate", "sha256")


@dataclass
class Clip:
    path: str
    captions: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    split: str = ""
    source: str = ""
    licence: str = ""
    duration: float = 0.0
    sample_rate: int = 0
    sha256: str = ""
    extra: dict = field(default_factory=dict)

    def to_json(self) -> str:
        record = {k: v for k, v in asdict(self).items() if k != "extra"}
        record.update(self.extra)
        return json.dumps(record, ensure_ascii=False)


def _check(record: object, where: str) -> Clip:
    if not isinstance(record, dict):
        raise ManifestError(f"{where}: expected a JSON object")
    if not isinstance(record.get("path"), str) or not record["path"]:
        raise ManifestError(f"{where}: 'path' must be a non-empty string")
    for key in ("captions", "labels"):
        value = record.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ManifestError(f"{where}: {key!r} must be a list of strings")
    for key in ("split", "source", "licence", "sha256"):
        if not isinstance(record.get(key, ""), str):
            raise ManifestError(f"{where}: {key!r} must be a string")
    for key, kind in (("duration", (int, float)), ("sample_rate", int)):
        value = record.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, kind) or value < 0:
            raise ManifestError(f"{where}: {key!r} must be a non-negative number")
    extra = {k: v for k, v in record.items() if k not in FIELDS}
    return Clip(**{k: record[k] for k in FIELDS if k in record}, extra=extra)


def read_manifest(path: str | Path) -> list[Clip]:
    """Read and validate a manifest; a bad line raises ManifestError naming ``file:line``."""
    path = Path(path)
    clips = []
    try:
        with path.open(encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = f"{path}:{number}"
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ManifestError(f"{where}: not valid JSON ({e.msg})") from None
                clips.append(_check(record, where))
    except UnicodeDecodeError:
        raise ManifestError(f"{path}: not a UTF-8 text file") from None
    except OSError as e:
        raise ManifestError(f"{path}: cannot read manifest ({e.strerror or type(e).__name__})") from None
    return clips


def file_sha256(path: str | Path) -> str:
    """The ``sha256`` field: hex digest of the file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve(manifest_path: str | Path, clip: Clip) -> Path:
    """The clip's audio file, with relative paths taken from the manifest's folder."""
    return Path(manifest_path).parent / clip.path


def write_manifest(path: str | Path, clips: Iterable[Clip]) -> None:
    """Write a manifest atomically (a temporary file renamed over the target)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for clip in clips:
                f.write(clip.to_json() + "\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
