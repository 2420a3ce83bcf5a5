"""ESC-50 and its ESC50-actions annotations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .common import DatasetError, Entry, float_field, int_field, read_table

ESC50_LICENCE = "CC-BY-NC-3.0"
ESC50_COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")

# The 20 actions of Elizalde et al., "Identifying actions for sound event classification" (WASPAA 2021).
ACTIONS = (
    "blowing",
    "breaking",
    "calling",
    "crumpling",
    "dripping",
    "exhaling",
    "exploding",
    "gasping",
    "groaning",
    "pouring",
    "ringing",
    "rolling",
    "rotating",
    "scraping",
    "singing",
    "sizzling",
    "splashing",
    "tapping",
    "vibrating",
    "wailing",
)


def read_esc50(root: Path) -> Iterator[Entry]:
    """ESC-50 (Piczak 2015), as in the official GitHub repository::

        <root>/meta/esc50.csv   filename,fold,target,category,esc10,src_file,take
        <root>/audio/<filename> 2000 five-second clips, e.g. 1-100032-A-0.wav

    Labels: ``category`` (e.g. ``dog``, ``chirping_birds``); split: ``fold1`` … ``fold5``.
    """
    for row in read_table(root / "meta" / "esc50.csv", ESC50_COLUMNS):
        yield Entry(
            audio=root / "audio" / row["filename"],
            labels=[row["category"]],
            split=f"fold{int_field(row, 'fold')}",
            licence=ESC50_LICENCE,
            extra={
                "target": int_field(row, "target"),
                "esc10": row["esc10"] == "True",
                "src_file": row["src_file"],
                "take": row["take"],
            },
        )


def read_esc50_actions(root: Path, actions_csv: Path | None = None, threshold: float = 2.0) -> Iterator[Entry]:
    """ESC50-actions: ESC-50 clips labelled with the actions that produced them.

    The annotations are those released with Elizalde et al., "Identifying actions for sound event
    classification" (WASPAA 2021; github.com/bmartin1/Identifying_Actions_for_Sound_Event_Classification):
    ``actionvector_one_per_audiofile.csv`` with columns ``filename,fold,target,category`` and one
    column per action holding the mean of three listeners' 0–4 ratings ("how likely did this action
    produce part of the sound"). Expected layout: an ESC-50 copy (see ``esc50``) plus that file at
    ``<root>/meta/actionvector_one_per_audiofile.csv`` (or ``actions_csv=``).

    No official rule turns ratings into labels, so this adapter defines one: a clip's labels are
    the actions rated at least ``threshold`` (default 2.0, "mildly likely" or more on average),
    alphabetical; the ratings themselves are kept in ``action_ratings``. Split: the ESC-50 fold.
    """
    actions_csv = Path(actions_csv) if actions_csv else root / "meta" / "actionvector_one_per_audiofile.csv"
    rows = read_table(actions_csv, ("filename", "fold", "category", *ACTIONS))
    for row in rows:
        ratings = {action: float_field(row, action) for action in ACTIONS}
        for action, rating in ratings.items():
            if not 0.0 <= rating <= 4.0:
                raise DatasetError(f"{row.where}: rating for {action!r} outside 0–4: {rating}")
        yield Entry(
            audio=root / "audio" / row["filename"],
            labels=[a for a in ACTIONS if ratings[a] >= threshold],
            split=f"fold{int_field(row, 'fold')}",
            licence=ESC50_LICENCE,
            extra={"category": row["category"], "action_ratings": ratings},
        )
