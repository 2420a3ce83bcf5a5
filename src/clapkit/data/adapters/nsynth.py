"""NSynth."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .common import DatasetError, Entry, read_json

FIELDS = ("instrument_family_str", "pitch", "velocity", "qualities_str", "instrument_source_str", "instrument_str")


def read_nsynth(root: Path) -> Iterator[Entry]:
    """NSynth (Engel et al. 2017), official TFRecord-free "json/wav" layout::

        <root>/nsynth-{train,valid,test}/examples.json   note_str → {instrument_family_str, pitch, …}
        <root>/nsynth-{train,valid,test}/audio/<note_str>.wav

    Every split folder present is read (at least one must be). Labels: ``instrument_family_str``
    (``bass``, ``brass``, … ``vocal``); split: ``train``, ``valid`` or ``test``; ``pitch`` (MIDI),
    ``velocity``, ``qualities`` (``qualities_str``), ``instrument_source`` and ``instrument`` go to
    the clip's extra fields.
    """
    folders = [(split, root / f"nsynth-{split}") for split in ("train", "valid", "test")]
    folders = [(split, f) for split, f in folders if f.is_dir()]
    if not folders:
        raise DatasetError(f"{root}: no nsynth-train/, nsynth-valid/ or nsynth-test/ folder")
    for split, folder in folders:
        path = folder / "examples.json"
        examples = read_json(path)
        if not isinstance(examples, dict):
            raise DatasetError(f"{path}: expected a JSON object keyed by note_str")
        for note, record in examples.items():
            missing = [f for f in FIELDS if f not in record] if isinstance(record, dict) else ["(not an object)"]
            if missing:
                raise DatasetError(f"{path}: example {note!r} lacks {missing[0]!r}")
            yield Entry(
                audio=folder / "audio" / f"{note}.wav",
                labels=[record["instrument_family_str"]],
                split=split,
                licence="CC-BY-4.0",
                extra={
                    "pitch": record["pitch"],
                    "velocity": record["velocity"],
                    "qualities": list(record["qualities_str"]),
                    "instrument_source": record["instrument_source_str"],
                    "instrument": record["instrument_str"],
                },
            )
