"""Dataset adapters: read a user's local copy of a dataset in its official layout and write a
manifest (:mod:`clapkit.data.manifest`). Each adapter's docstring gives the layout it expects.

    >>> build_manifest("esc50", Path("/data/ESC-50"), Path("manifests/esc50.jsonl"))

A missing or malformed metadata file raises :class:`DatasetError` naming the file and the problem;
a missing or unreadable audio file is skipped, listed at the end (log and ``<out>.skipped.txt``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from clapkit.data.manifest import Clip

from .audioset import read_audioset, read_dcase2017_task4
from .build import Skipped, collect_clips, write_with_report
from .captioning import read_audiocaps, read_clotho, read_macs, read_wavcaps
from .common import DatasetError, Entry, labels_to_caption
from .esc50 import read_esc50, read_esc50_actions
from .folders import (
    read_beijing_opera,
    read_gtzan_genres,
    read_gtzan_music_speech,
    read_libricount,
    read_sesa,
)
from .fsd50k import read_fsd50k
from .nsynth import read_nsynth
from .speech import read_crema_d, read_ravdess, read_speech_commands
from .tut2017 import read_tut2017
from .urbansound8k import read_urbansound8k
from .vocalsound import read_vocalsound

__all__ = [
    "ADAPTERS",
    "Adapter",
    "DatasetError",
    "Entry",
    "Skipped",
    "build_manifest",
    "collect_manifest",
    "labels_to_caption",
]


@dataclass(frozen=True)
class Adapter:
    """A dataset reader (``read(root, **options)`` yields :class:`Entry`) and whether its labels
    become captions by default (the label-only training sets: FSD50K, AudioSet)."""

    read: Callable[..., Iterable[Entry]]
    caption_labels: bool = False

    @property
    def doc(self) -> str:
        return self.read.__doc__ or ""


ADAPTERS: dict[str, Adapter] = {
    "esc50": Adapter(read_esc50),
    "esc50_actions": Adapter(read_esc50_actions),
    "urbansound8k": Adapter(read_urbansound8k),
    "gtzan_genres": Adapter(read_gtzan_genres),
    "gtzan_music_speech": Adapter(read_gtzan_music_speech),
    "fsd50k": Adapter(read_fsd50k, caption_labels=True),
    "audioset": Adapter(read_audioset, caption_labels=True),
    "dcase2017_task4": Adapter(read_dcase2017_task4),
    "vocalsound": Adapter(read_vocalsound),
    "sesa": Adapter(read_sesa),
    "tut2017": Adapter(read_tut2017),
    "nsynth": Adapter(read_nsynth),
    "beijing_opera": Adapter(read_beijing_opera),
    "crema_d": Adapter(read_crema_d),
    "ravdess": Adapter(read_ravdess),
    "speech_commands": Adapter(read_speech_commands),
    "libricount": Adapter(read_libricount),
    "audiocaps": Adapter(read_audiocaps),
    "clotho": Adapter(read_clotho),
    "wavcaps": Adapter(read_wavcaps),
    "macs": Adapter(read_macs),
}


def adapter_for(dataset: str) -> Adapter:
    try:
        return ADAPTERS[dataset]
    except KeyError:
        raise DatasetError(f"unknown dataset {dataset!r} (known: {', '.join(sorted(ADAPTERS))})") from None


def collect_manifest(
    dataset: str,
    root: Path,
    out: Path,
    *,
    caption_labels: bool | None = None,
    absolute_paths: bool = False,
    workers: int = 4,
    **options,
) -> tuple[list[Clip], list[Skipped]]:
    """The clips a manifest at ``out`` would hold, and the skipped ones; writes nothing."""
    adapter = adapter_for(dataset)
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found")
    known = [name for name in inspect.signature(adapter.read).parameters if name != "root"]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise DatasetError(f"{dataset}: unknown option {unknown[0]!r} (known: {', '.join(known) or 'none'})")
    entries = list(adapter.read(root, **options))
    if caption_labels is None:
        caption_labels = adapter.caption_labels
    return collect_clips(
        entries, dataset, Path(out).parent, absolute=absolute_paths, caption_labels=caption_labels, workers=workers
    )


def build_manifest(dataset: str, root: Path, out: Path, **options) -> Path:
    """Write the manifest of ``dataset`` read from ``root`` to ``out`` and return ``out``.

    Options: ``caption_labels`` (give label-only clips a caption made from their labels; default
    per dataset), ``absolute_paths`` (default: paths relative to ``out``'s folder), ``workers``
    (threads probing audio files), plus the adapter's own (see ``ADAPTERS[dataset].doc``).
    Skipped clips are logged and listed in ``<out>.skipped.txt``.
    """
    clips, skipped = collect_manifest(dataset, root, out, **options)
    return write_with_report(Path(out), clips, skipped)
