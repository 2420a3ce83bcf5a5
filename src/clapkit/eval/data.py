"""A task's test clips, labels and class vocabulary, read from ``--data-root`` through the dataset
adapters (or the offline manifests); a missing dataset is a one-line reason, not an error."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..data.manifest import Clip, file_sha256, read_manifest
from ..errors import ClapkitError
from .tasks import Task


class MissingData(ClapkitError):
    """The task's data is not under --data-root (the run reports the task skipped)."""


@dataclass
class TaskData:
    """``paths[i]`` and ``sha256[i]`` of test clip i; ``targets[i]``: its label index (single), its
    label indices (multi) or its captions (retrieval, caption); ``classes``: the vocabulary."""

    paths: list[str]
    sha256: list[str]
    targets: list
    classes: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # clips the adapter could not read


def load_task_data(task: Task, data_root: Path) -> TaskData:
    clips, skipped = _read_clips(task, Path(data_root))
    labelled = [(clip, _labels(task, clip)) for clip in clips]
    classes = sorted({label for _, labels in labelled for label in labels}, key=_natural) if task.kind in ("single", "multi") else []
    test = [(clip, labels) for clip, labels in labelled if (task.splits is None or clip.split in task.splits) and labels]
    if not test:
        raise MissingData(f"{task.name}: no test clips with labels in the data read (splits {task.splits})")
    index = {label: i for i, label in enumerate(classes)}
    if task.kind == "single":
        targets = [index[labels[0]] for _, labels in test]
    elif task.kind == "multi":
        targets = [sorted(index[label] for label in labels) for _, labels in test]
    else:
        targets = [list(labels) for _, labels in test]
    return TaskData([clip.path for clip, _ in test], [clip.sha256 or file_sha256(Path(clip.path)) for clip, _ in test],
                    targets, classes, skipped)


def _natural(label: str):
    return (0, int(label), "") if label.lstrip("-").isdigit() else (1, 0, label.lower())


def _read_clips(task: Task, data_root: Path) -> tuple[list[Clip], list[str]]:
    folder = data_root / task.folder
    if task.dataset == "offline":
        manifest = folder / task.manifest
        if not manifest.is_file():
            raise MissingData(f"{task.name}: {manifest} not found; write it with `clapkit data build "
                              f"{'offline' if task.manifest == 'manifest.jsonl' else 'eval'} --out {folder}`")
        clips = read_manifest(manifest)
        for clip in clips:
            clip.path = str((manifest.parent / clip.path).resolve()) if not Path(clip.path).is_absolute() else clip.path
            clip.sha256 = ""  # hashed again when read: the file may have changed since the manifest
        return clips, []
    from ..data.adapters import ADAPTERS, collect_manifest

    if not folder.is_dir():
        layout = " ".join(line.strip() for line in ADAPTERS[task.dataset].doc.strip().splitlines()[:1])
        raise MissingData(f"{task.name}: {folder} not found; expected {layout} (see `clapkit data manifest --help`)")
    clips, skipped = collect_manifest(task.dataset, folder, folder / "manifest.jsonl", absolute_paths=True,
                                      **task.options)
    return clips, [str(s) for s in skipped]


def _labels(task: Task, clip: Clip) -> list[str]:
    if task.label == "captions":
        return list(clip.captions)
    if task.label == "labels":
        values = clip.labels
    elif task.label in ("first", "second"):
        position = 0 if task.label == "first" else 1
        values = clip.labels[position:position + 1]
    else:
        value = clip.extra.get(task.label)
        values = [str(v) for v in value] if isinstance(value, list) else ([] if value is None else [str(value)])
    return [str(v) for v in values]
