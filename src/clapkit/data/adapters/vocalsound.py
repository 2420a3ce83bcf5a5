"""VocalSound."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .common import DatasetError, Entry, read_json, read_table

SPLITS = {"train": "tr.json", "validation": "val.json", "test": "te.json"}


def read_vocalsound(root: Path, audio_dir: str = "audio_16k") -> Iterator[Entry]:
    """VocalSound (Gong et al. 2022), official release layout::

        <root>/class_labels_indices_vs.csv     index,mid,display_name
        <root>/datafiles/{tr,val,te}.json      {"data": [{"wav": ".../f0003_0_cough.wav", "labels": "<mid>"}]}
        <root>/audio_16k/<speaker>_<n>_<sound>.wav   (``audio_dir="audio_44k"`` for the 44.1 kHz copy)

    Labels: the ``display_name`` of each clip's label mid; split: ``train``, ``validation`` or
    ``test`` (speaker-disjoint, from the datafiles; the ``wav`` paths there are the authors' and only
    their file names are used). Licence CC-BY-SA-4.0.
    """
    names = {
        row["mid"]: row["display_name"]
        for row in read_table(root / "class_labels_indices_vs.csv", ("index", "mid", "display_name"))
    }
    for split, name in SPLITS.items():
        path = root / "datafiles" / name
        data = read_json(path)
        records = data.get("data") if isinstance(data, dict) else None
        if not isinstance(records, list):
            raise DatasetError(f'{path}: expected {{"data": [...]}}')
        for n, record in enumerate(records):
            if not isinstance(record, dict) or "wav" not in record or "labels" not in record:
                raise DatasetError(f"{path}: data[{n}] lacks 'wav' or 'labels'")
            mids = [m for m in str(record["labels"]).split(",") if m]
            unknown = [m for m in mids if m not in names]
            if unknown:
                raise DatasetError(f"{path}: data[{n}] label {unknown[0]!r} not in class_labels_indices_vs.csv")
            filename = str(record["wav"]).replace("\\", "/").rsplit("/", 1)[-1]
            speaker = filename.split("_", 1)[0]
            yield Entry(
                audio=root / audio_dir / filename,
                labels=[names[m] for m in mids],
                split=split,
                licence="CC-BY-SA-4.0",
                extra={"speaker": speaker},
            )
