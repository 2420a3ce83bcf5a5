"""TUT Acoustic Scenes 2017."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .common import DatasetError, Entry, read_table

LICENCE = "TUT academic non-commercial"
DEV = "TUT-acoustic-scenes-2017-development"
EVAL = "TUT-acoustic-scenes-2017-evaluation"


def scene_rows(folder: Path):
    return read_table(folder / "meta.txt", delimiter="\t", fieldnames=("filename", "scene_label"))


def read_tut2017(root: Path) -> Iterator[Entry]:
    """TUT Acoustic Scenes 2017 (DCASE 2017 task 1), 15 scenes, 10-s segments::

        <root>/TUT-acoustic-scenes-2017-development/meta.txt        audio/a001_0_10.wav <TAB> beach <TAB> a001
        <root>/TUT-acoustic-scenes-2017-development/evaluation_setup/fold<k>_evaluate.txt   k = 1 … 4
        <root>/TUT-acoustic-scenes-2017-development/audio/*.wav
        <root>/TUT-acoustic-scenes-2017-evaluation/meta.txt         (optional, same format)
        <root>/TUT-acoustic-scenes-2017-evaluation/audio/*.wav

    Labels: ``scene_label`` (``beach``, ``cafe/restaurant``, ``city_center`` …). Split: for a
    development segment, ``fold<k>`` where it is in ``fold<k>_evaluate.txt`` (each segment is
    evaluated in exactly one fold); ``evaluation`` for the evaluation set. At least one of the two
    folders must be present.
    """
    if not (root / DEV).is_dir() and not (root / EVAL).is_dir():
        raise DatasetError(f"{root}: neither {DEV}/ nor {EVAL}/ found")
    if (root / DEV).is_dir():
        dev = root / DEV
        fold_of = {}
        for k in range(1, 5):
            for row in read_table(
                dev / "evaluation_setup" / f"fold{k}_evaluate.txt", delimiter="\t", fieldnames=("filename",)
            ):
                fold_of[row["filename"]] = f"fold{k}"
        for row in scene_rows(dev):
            if row["filename"] not in fold_of:
                raise DatasetError(f"{row.where}: {row['filename']} is in no fold<k>_evaluate.txt")
            yield Entry(
                audio=dev / row["filename"],
                labels=[row["scene_label"]],
                split=fold_of[row["filename"]],
                licence=LICENCE,
            )
    if (root / EVAL).is_dir():
        for row in scene_rows(root / EVAL):
            yield Entry(
                audio=root / EVAL / row["filename"], labels=[row["scene_label"]], split="evaluation", licence=LICENCE
            )
