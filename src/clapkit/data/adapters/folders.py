"""Datasets labelled by their folder or file names: GTZAN genres, GTZAN music/speech, Beijing Opera
percussion, SESA and LibriCount."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from .common import DatasetError, Entry, audio_files, first_existing, require_dir

GTZAN_GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
BEIJING_OPERA_INSTRUMENTS = ("bangu", "daluo", "naobo", "xiaoluo")
SESA_CLASSES = {"casual": "Casual", "gunshot": "Gunshot", "explosion": "Explosion", "siren": "Siren"}


def labelled_files(
    files: list[Path], label_of: Callable[[Path], str | None] | str, what: str, *, split: str = "", licence: str = ""
) -> Iterator[Entry]:
    """One entry per file, labelled by ``label_of`` (a function of the path, or one label for all);
    a file it cannot label is reported, not fatal."""
    for path in files:
        label = label_of if isinstance(label_of, str) else label_of(path)
        problem = "" if label else f"cannot tell the {what} from the file name"
        yield Entry(audio=path, labels=[label] if label else [], split=split, licence=licence, problem=problem)


def read_gtzan_genres(root: Path) -> Iterator[Entry]:
    """GTZAN genre collection (Tzanetakis & Cook 2002): 1000 30-s clips, 100 per genre::

        <root>/genres_original/<genre>/<genre>.000NN.wav   (Kaggle copy)
        <root>/genres/<genre>/<genre>.000NN.au             (original marsyas tarball)

    Labels: the 10 genre folder names (``blues`` … ``rock``). No official split (split is empty).
    A known-corrupt file (e.g. ``jazz.00054.wav`` in the Kaggle copy) is reported and skipped.
    """
    base = require_dir(first_existing(root / "genres_original", root / "genres"))
    for genre in GTZAN_GENRES:
        yield from labelled_files(audio_files(require_dir(base / genre)), genre, "genre", licence="unknown")


def read_gtzan_music_speech(root: Path) -> Iterator[Entry]:
    """GTZAN music/speech collection: 64 music and 64 speech 30-s clips (22050 Hz)::

        <root>/music_speech/music_wav/*.wav   (or <root>/music_wav/*.wav)
        <root>/music_speech/speech_wav/*.wav

    Labels: ``music`` or ``speech``; no official split.
    """
    base = root / "music_speech" if (root / "music_speech").is_dir() else root
    for label in ("music", "speech"):
        yield from labelled_files(audio_files(require_dir(base / f"{label}_wav")), label, "class", licence="unknown")


def read_beijing_opera(root: Path) -> Iterator[Entry]:
    """Beijing Opera percussion instrument dataset (Tian et al. 2014; CompMusic/Zenodo): 236
    isolated strokes of four instruments, one folder per instrument, anywhere below ``root``::

        <root>/.../bangu/*.wav  <root>/.../daluo/*.wav  <root>/.../naobo/*.wav  <root>/.../xiaoluo/*.wav

    Labels: the instrument (``bangu`` clapper-drum, ``daluo`` large gong, ``naobo`` cymbals,
    ``xiaoluo`` small gong); folder names are matched case-insensitively. No official split.
    """
    folders = {p.name.lower(): p for p in sorted(root.rglob("*")) if p.is_dir()}
    missing = [name for name in BEIJING_OPERA_INSTRUMENTS if name not in folders]
    if missing:
        raise DatasetError(f"{root}: no folder for instrument(s) {', '.join(missing)}")
    for name in BEIJING_OPERA_INSTRUMENTS:
        yield from labelled_files(audio_files(folders[name]), name, "instrument", licence="CC-BY-NC-4.0")


def read_sesa(root: Path) -> Iterator[Entry]:
    """SESA, Sound Events for Surveillance Applications (Spadini 2019, Zenodo 3519845)::

        <root>/train/<class>_<n>.wav  (480 files)    <root>/test/<class>_<n>.wav  (105 files)

    (the Zenodo zip may nest these under ``SESA/``; ``train``/``test`` are found anywhere below).
    The class is the file-name prefix; labels use the official names ``Casual``, ``Gunshot``,
    ``Explosion``, ``Siren``. Split: ``train`` or ``test``.
    """
    for split in ("train", "test"):
        folder = next((p for p in sorted(root.rglob(split)) if p.is_dir()), root / split)
        files = audio_files(require_dir(folder))
        yield from labelled_files(
            files,
            lambda p: SESA_CLASSES.get(p.stem.rsplit("_", 1)[0].lower()),
            "class",
            split=split,
            licence="CC-BY-4.0",
        )


def read_libricount(root: Path) -> Iterator[Entry]:
    """LibriCount10 0 dB (Stöter et al. 2018, Zenodo 1216072): 5-s mixtures of 0–10 speakers::

        <root>/test/<k>_<uuid>.wav   (+ <k>_<uuid>.json with per-speaker activity)

    ``k`` is the number of speakers; labels: ``"0"`` … ``"10"``. Split: ``test`` (the only one).
    """

    def count(path: Path) -> str | None:
        head = path.stem.split("_", 1)[0]
        return head if head.isdigit() and 0 <= int(head) <= 10 else None

    yield from labelled_files(
        audio_files(require_dir(first_existing(root / "test", root))),
        count,
        "speaker count",
        split="test",
        licence="CC-BY-4.0",
    )
