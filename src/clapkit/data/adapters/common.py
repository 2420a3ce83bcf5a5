"""Building blocks shared by the dataset adapters: table readers with clear errors, an audio
file index, label→caption rules and the :class:`Entry` an adapter yields for each clip."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from clapkit.audio.formats import AUDIO_SUFFIXES, has_audio_suffix  # noqa: F401  (captioning.py imports it here)
from clapkit.errors import DatasetError


@dataclass
class Entry:
    """One clip as an adapter sees it, before its audio file is probed."""

    audio: Path
    labels: list[str] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)
    split: str = ""
    licence: str = ""
    extra: dict = field(default_factory=dict)
    problem: str = ""  # set when the entry cannot become a clip: it is skipped and reported


class Row(dict):
    """A table row (column → text) that remembers where it came from (``file:line``)."""

    def __init__(self, where: str, items: Iterable[tuple[str, str]] = ()):
        super().__init__(items)
        self.where = where


def require_file(path: Path) -> Path:
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    return path


def require_dir(path: Path) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{path}: folder not found")
    return path


def read_table(
    path: Path,
    columns: Sequence[str] = (),
    *,
    delimiter: str = ",",
    fieldnames: Sequence[str] | None = None,
    encoding: str = "utf-8",
    comment: str | None = None,
) -> list[Row]:
    """Read a delimited text file into rows, checking that ``columns`` are present.

    ``fieldnames`` names the columns of a file without a header line (every line must then
    have at least that many fields); ``comment`` skips lines starting with that prefix.
    """
    require_file(path)
    try:
        text = path.read_text(encoding=encoding)
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not valid {encoding} text ({e.reason} at byte {e.start})") from None
    records = [
        (f"{path}:{n}", next(csv.reader([line], delimiter=delimiter, skipinitialspace=True)))
        for n, line in enumerate(text.splitlines(), 1)
        if line.strip() and not (comment and line.lstrip().startswith(comment))
    ]
    if fieldnames is None:
        if not records:
            raise DatasetError(f"{path}: empty file, expected a header line")
        header, records = [h.strip() for h in records[0][1]], records[1:]
    else:
        header = list(fieldnames)
    for column in columns:
        if column not in header:
            raise DatasetError(f"{path}: missing column {column!r}")
    rows = []
    for where, values in records:
        if len(values) < len(header) or (fieldnames is None and len(values) != len(header)):
            raise DatasetError(f"{where}: expected {len(header)} fields, found {len(values)}")
        rows.append(Row(where, zip(header, (v.strip() for v in values[: len(header)]), strict=True)))
    return rows


def read_json(path: Path) -> object:
    require_file(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: not valid JSON ({e})") from None


def read_lines(path: Path) -> list[str]:
    """Non-empty lines of a text file, stripped."""
    require_file(path)
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def int_field(row: Row, column: str) -> int:
    try:
        return int(row[column])
    except ValueError:
        raise DatasetError(f"{row.where}: column {column!r} is not an integer: {row[column]!r}") from None


def float_field(row: Row, column: str) -> float:
    try:
        return float(row[column])
    except ValueError:
        raise DatasetError(f"{row.where}: column {column!r} is not a number: {row[column]!r}") from None


def audio_files(folder: Path) -> list[Path]:
    """Audio files under ``folder`` (recursively), sorted."""
    return sorted(p for p in folder.rglob("*") if has_audio_suffix(p.name) and p.is_file())


class AudioIndex:
    """Audio files under a folder, found by file name or by stem (name without extension).

    For datasets whose clips are downloaded by the user under names we cannot predict exactly
    (YouTube ids with or without a ``Y`` prefix, any audio format)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._by_name: dict[str, Path] = {}
        self._by_stem: dict[str, Path] = {}
        if folder.is_dir():
            for path in audio_files(folder):
                self._by_name.setdefault(path.name, path)
                self._by_stem.setdefault(path.stem, path)

    def find(self, *candidates: str) -> Path | None:
        for name in candidates:
            path = self._by_name.get(name) or self._by_stem.get(name)
            if path is not None:
                return path
        return None

    def missing(self, name: str) -> Path:
        """The path reported for a clip not found in the index."""
        return self.folder / name


def licence_from_url(url: str) -> str:
    """A Creative Commons licence URL as a short identifier (``CC-BY-NC-3.0``, ``CC0-1.0``)."""
    match = re.search(r"creativecommons\.org/licenses/([a-z+-]+)/(\d\.\d)", url)
    if match:
        return f"CC-{match.group(1).upper()}-{match.group(2)}"
    if "publicdomain/zero" in url:
        return "CC0-1.0"
    return url.strip()


# Label → caption rules: a few plain templates, picked deterministically from the clip id so that
# a rebuilt manifest gets the same captions.
CAPTION_TEMPLATES = (
    "The sound of {}.",
    "This is a sound of {}.",
    "A recording of {}.",
    "{} can be heard.",
    "An audio clip of {}.",
)


def label_text(label: str) -> str:
    """A label as words: underscores to spaces, lower case (``Electric_guitar`` → ``electric guitar``)."""
    return label.replace("_", " ").strip().lower()


def join_words(words: Sequence[str]) -> str:
    if len(words) <= 2:
        return " and ".join(words)
    return "; ".join(words[:-1]) + " and " + words[-1]


def labels_to_caption(labels: Sequence[str], clip_id: str) -> str:
    """One caption naming every label, in a template chosen by a hash of ``clip_id``."""
    choice = int(hashlib.sha256(clip_id.encode()).hexdigest(), 16) % len(CAPTION_TEMPLATES)
    text = CAPTION_TEMPLATES[choice].format(join_words([label_text(lab) for lab in labels]))
    return text[0].upper() + text[1:]


def first_existing(*paths: Path) -> Path:
    """The first of ``paths`` that exists, else the first (so the error names the expected one)."""
    return next((p for p in paths if p.exists()), paths[0])


def group_by(rows: Iterable[Row], column: str) -> dict[str, list[Row]]:
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(row[column], []).append(row)
    return groups
