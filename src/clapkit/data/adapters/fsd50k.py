"""FSD50K."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .common import DatasetError, Entry, licence_from_url, read_json, read_table

DATASET_LICENCE = "CC-BY-4.0"


def clip_licences(path: Path) -> dict[str, str]:
    """fname → licence from an optional ``*_clips_info_FSD50K.json``; empty when absent."""
    if not path.is_file():
        return {}
    info = read_json(path)
    if not isinstance(info, dict):
        raise DatasetError(f"{path}: expected a JSON object keyed by fname")
    return {
        fname: licence_from_url(record.get("license", ""))
        for fname, record in info.items()
        if isinstance(record, dict) and record.get("license")
    }


def read_fsd50k(root: Path) -> Iterator[Entry]:
    """FSD50K (Fonseca et al. 2022), official Zenodo layout::

        <root>/FSD50K.ground_truth/dev.csv    fname,labels,mids,split   (split: train | val)
        <root>/FSD50K.ground_truth/eval.csv   fname,labels,mids
        <root>/FSD50K.dev_audio/<fname>.wav   <root>/FSD50K.eval_audio/<fname>.wav
        <root>/FSD50K.metadata/{dev,eval}_clips_info_FSD50K.json   (optional: per-clip licences)

    Labels: the comma-separated AudioSet-vocabulary names of ``labels`` (e.g. ``Electric_guitar``);
    split: ``train``, ``val`` or ``eval``. Licence: the clip's own (CC0/CC-BY/CC-BY-NC …) when the
    metadata JSON is present, else the dataset's CC-BY-4.0. With ``caption_labels`` (the default for
    this dataset) each clip gets one caption made from its labels.
    """
    for part, columns in (("dev", ("fname", "labels", "mids", "split")), ("eval", ("fname", "labels", "mids"))):
        licences = clip_licences(root / "FSD50K.metadata" / f"{part}_clips_info_FSD50K.json")
        for row in read_table(root / "FSD50K.ground_truth" / f"{part}.csv", columns):
            labels = [label for label in row["labels"].split(",") if label]
            if not labels:
                raise DatasetError(f"{row.where}: clip {row['fname']} has no labels")
            yield Entry(
                audio=root / f"FSD50K.{part}_audio" / f"{row['fname']}.wav",
                labels=labels,
                split=row.get("split", "eval"),
                licence=licences.get(row["fname"], DATASET_LICENCE),
                extra={"mids": row["mids"].split(",")},
            )
