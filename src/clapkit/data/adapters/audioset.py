"""AudioSet segment lists and the DCASE 2017 task 4 subset of AudioSet."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .common import AudioIndex, DatasetError, Entry, float_field, group_by, read_table

AUDIOSET_LICENCE = "YouTube (per-video terms); labels CC-BY-4.0"
SEGMENT_FILES = {
    "balanced_train": "balanced_train_segments.csv",
    "eval": "eval_segments.csv",
    "unbalanced_train": "unbalanced_train_segments.csv",
}


def class_names(path: Path) -> dict[str, str]:
    """mid → display name from ``class_labels_indices.csv`` (index,mid,display_name)."""
    return {row["mid"]: row["display_name"] for row in read_table(path, ("index", "mid", "display_name"))}


def segment_candidates(ytid: str, start: float, end: float) -> tuple[str, ...]:
    """File stems a downloaded segment may have: ``<id>``, ``Y<id>``, ``<id>_<start>_<end>``, …"""
    span = f"{ytid}_{start:.3f}_{end:.3f}"
    return ytid, f"Y{ytid}", span, f"Y{span}"


def read_audioset(root: Path, audio_dir: Path | None = None, subsets: tuple[str, ...] | None = None) -> Iterator[Entry]:
    """AudioSet (Gemmeke et al. 2017) segment lists with a folder of clips you downloaded::

        <root>/class_labels_indices.csv          index,mid,display_name
        <root>/balanced_train_segments.csv       "# YTID, start_seconds, end_seconds, positive_labels"
        <root>/eval_segments.csv                 (and unbalanced_train_segments.csv if wanted)
        <root>/audio/**/<YTID>.<ext>             (or ``Y<YTID>``, ``<YTID>_<start>_<end>``; ``audio_dir=``)

    ``subsets`` picks among ``balanced_train``, ``eval``, ``unbalanced_train`` (default: every
    segment file present). Labels: the display names of ``positive_labels`` (e.g. ``Speech``,
    ``Male speech, man speaking``); split: the subset name. Segments whose clip is not in the audio
    folder (videos taken down) are reported and skipped. With ``caption_labels`` (the default for
    this dataset) each clip gets one caption made from its labels.
    """
    names = class_names(root / "class_labels_indices.csv")
    if subsets is None:
        subsets = tuple(s for s, f in SEGMENT_FILES.items() if (root / f).is_file()) or ("balanced_train", "eval")
    index = AudioIndex(Path(audio_dir) if audio_dir else root / "audio")
    for subset in subsets:
        if subset not in SEGMENT_FILES:
            raise DatasetError(
                f"{root}: unknown AudioSet subset {subset!r} (expected one of {', '.join(SEGMENT_FILES)})"
            )
        rows = read_table(
            root / SEGMENT_FILES[subset],
            comment="#",
            fieldnames=("YTID", "start_seconds", "end_seconds", "positive_labels"),
        )
        for row in rows:
            start, end = float_field(row, "start_seconds"), float_field(row, "end_seconds")
            mids = [m for m in row["positive_labels"].split(",") if m]
            unknown = [m for m in mids if m not in names]
            if unknown:
                raise DatasetError(f"{row.where}: label {unknown[0]!r} not in class_labels_indices.csv")
            candidates = segment_candidates(row["YTID"], start, end)
            audio = index.find(*candidates) or index.missing(candidates[0])
            yield Entry(
                audio=audio,
                labels=[names[m] for m in mids],
                split=subset,
                licence=AUDIOSET_LICENCE,
                extra={"ytid": row["YTID"], "start": start, "end": end, "mids": mids},
            )


DCASE2017_SPLITS = {
    "train": "groundtruth_weak_label_training_set.csv",
    "test": "groundtruth_weak_label_testing_set.csv",
    "evaluation": "groundtruth_weak_label_evaluation_set.csv",
}


def read_dcase2017_task4(root: Path, audio_dir: Path | None = None) -> Iterator[Entry]:
    """DCASE 2017 task 4, "large-scale weakly supervised sound event detection for smart cars":
    17 AudioSet classes (``Train horn`` … ``Train``), weak labels from the task's ground-truth files::

        <root>/groundtruth_weak_label_training_set.csv     tab-separated, no header:
        <root>/groundtruth_weak_label_testing_set.csv      <YTID>_<start>_<end>.wav  start  end  label
        <root>/groundtruth_weak_label_evaluation_set.csv   (one line per label of a clip)
        <root>/audio/**/<YTID>_<start>_<end>.wav           (``Y``-prefixed names too; ``audio_dir=``)

    Every ground-truth file present is read (at least one must be). Labels: the official class
    names; split: ``train``, ``test`` or ``evaluation``.
    """
    present = {split: root / name for split, name in DCASE2017_SPLITS.items() if (root / name).is_file()}
    if not present:
        raise DatasetError(f"{root}: no DCASE 2017 task 4 ground-truth file ({', '.join(DCASE2017_SPLITS.values())})")
    index = AudioIndex(Path(audio_dir) if audio_dir else root / "audio")
    for split, path in present.items():
        rows = read_table(path, delimiter="\t", fieldnames=("filename", "start", "end", "label"))
        for filename, clip_rows in group_by(rows, "filename").items():
            labels = sorted({row["label"] for row in clip_rows})
            audio = index.find(filename, f"Y{filename}") or index.missing(filename)
            yield Entry(
                audio=audio,
                labels=labels,
                split=split,
                licence=AUDIOSET_LICENCE,
                extra={"start": float_field(clip_rows[0], "start"), "end": float_field(clip_rows[0], "end")},
            )
