"""UrbanSound8K."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .common import Entry, float_field, int_field, read_table

COLUMNS = ("slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class")


def read_urbansound8k(root: Path) -> Iterator[Entry]:
    """UrbanSound8K (Salamon et al. 2014), official layout::

        <root>/metadata/UrbanSound8K.csv  slice_file_name,fsID,start,end,salience,fold,classID,class
        <root>/audio/fold<k>/<slice_file_name>   k = 1 … 10

    Labels: ``class`` (e.g. ``dog_bark``, ``street_music``); split: ``fold1`` … ``fold10``.
    """
    for row in read_table(root / "metadata" / "UrbanSound8K.csv", COLUMNS):
        fold = int_field(row, "fold")
        yield Entry(
            audio=root / "audio" / f"fold{fold}" / row["slice_file_name"],
            labels=[row["class"]],
            split=f"fold{fold}",
            licence="CC-BY-NC-3.0",
            extra={
                "fsID": row["fsID"],
                "start": float_field(row, "start"),
                "end": float_field(row, "end"),
                "salience": int_field(row, "salience"),
                "classID": int_field(row, "classID"),
            },
        )
