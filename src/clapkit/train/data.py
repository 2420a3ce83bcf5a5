"""Training data: seeded, sharded across ranks, resumable at an exact step.

Sources are manifests (``.jsonl``, see :mod:`clapkit.data.manifest`) and WebDataset shards written
by :func:`clapkit.data.shards.write_shards` (a brace pattern ``train-{000000..000003}.tar``, a
printf pattern ``train-%06d.tar`` or a glob ``train-*.tar``). All of them become one in-memory index
of clips, numbered 0..n-1 in source order (a manifest's line order, a shard's member order). A
shard is opened once, with :mod:`tarfile`, to record where each sample's audio member lies; a
clip is later read by seeking to those bytes, without unpacking the tar or reading it in order.
Clips without captions cannot be trained on and are left out of the index (counted in
``uncaptioned``).

The data is map-style and keyed, so nothing depends on workers, ranks or where a run resumed:

* epoch ``e`` visits the clips in the order ``numpy.random.default_rng([seed, e]).permutation(n)``;
* step ``s`` of an epoch is the global batch at positions ``[s·B, (s+1)·B)`` of that order
  (``B = global_batch_size``; the tail of fewer than ``B`` clips is dropped, so there are
  ``n // B`` steps, each of ``B`` clips);
* rank ``r`` of ``world_size`` ranks takes the contiguous slice ``[r·b, (r+1)·b)`` of the global
  batch, ``b = B // world_size``;
* clip ``i`` in epoch ``e`` draws its caption (where it has several; in audio pretraining, its
  task and question) and then its random crop
  from ``numpy.random.default_rng([seed, e, i])``.

So ``batches(e, start_step=k)`` yields exactly the batches ``k, k+1, ...`` of an uninterrupted
pass, and ``workers > 0`` (a :class:`torch.utils.data.DataLoader` decoding whole steps in worker
processes, in order) yields the same batches as ``workers=0``.

Audio is decoded by clapkit's one decoder (:mod:`clapkit.audio.io`), mixed to mono and resampled
to ``sample_rate``; a clip longer than ``clip_samples`` is cropped (``"random"``: uniform start, for
training; ``"start"``: its first samples, for validation) and a shorter one is tiled
(:func:`clapkit.audio.windows.fit_length`). A clip the decoder refuses (``AudioError``) is left out
of its batch and listed in the batch's ``failures``; no other clip takes its place, so such a
batch is short.
"""
from __future__ import annotations

import json
import numbers
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from clapkit.audio.formats import AUDIO_SUFFIXES
from clapkit.audio.io import MAX_RATE, MIN_RATE, AudioError, load_audio
from clapkit.audio.windows import FILLS, fit_length, iter_windows
from clapkit.data.manifest import read_manifest, resolve
from clapkit.data.shards import expand_shards
from clapkit.errors import ShardError, UsageError, name_list, one_line
from clapkit.train.augment import WaveAugment
from clapkit.train.tasks import Question, TaskMixture

MANIFEST_SUFFIXES = (".jsonl",)
CROPS = ("random", "start")


@dataclass
class Batch:
    """One step's clips for one rank. ``failures``: ``(index, clip name, cause)`` of the clips of the
    step that could not be decoded and are not in the batch."""

    epoch: int
    step: int
    waveforms: torch.Tensor  # (b, clip_samples) float32
    captions: list[str]
    indices: list[int]  # global clip indices, in batch order
    failures: list[tuple[int, str, str]] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)  # audio pretraining: the questions (captions: the answers)

    def __len__(self) -> int:
        return len(self.indices)


@dataclass(frozen=True, slots=True)
class ClipRef:
    """Where a clip's audio is: a file (``offset < 0``) or ``size`` bytes at ``offset`` in a tar."""

    name: str  # how messages name the clip: its file, or ``shard.tar:member``
    captions: tuple[str, ...]
    path: str
    offset: int = -1
    size: int = 0
    fields: Mapping[str, object] = field(default_factory=dict)  # the clip's whole record (tasks read it)


# --- the index --------------------------------------------------------------------------------


def index_sources(sources: Sequence[str | Path]) -> tuple[list[ClipRef], int]:
    """``(clips with captions, number of clips without captions)`` of all ``sources``, in order.

    A manifest may name one split: ``corpus/manifest.jsonl#train`` keeps the clips whose ``split``
    is ``train``."""
    if isinstance(sources, (str, Path)):
        sources = [sources]
    if not sources:
        raise UsageError("no training data sources given (need manifests or shard patterns)")
    clips: list[ClipRef] = []
    for source in sources:
        spec, _, split = str(source).partition("#")
        if spec.lower().endswith(MANIFEST_SUFFIXES):
            clips += _manifest_clips(Path(spec), split or None)
        else:
            for shard in _shard_files(spec):
                clips += _shard_clips(shard)
    captioned = [clip for clip in clips if clip.captions]
    if not captioned:
        what = "clips, none with captions" if clips else "no clips"
        raise UsageError(f"{name_list([str(s) for s in sources])}: {len(clips)} {what}; nothing to train on")
    return captioned, len(clips) - len(captioned)


def _manifest_clips(manifest: Path, split: str | None) -> list[ClipRef]:
    clips = read_manifest(manifest)  # ManifestError: missing or malformed
    if split is not None:
        clips = [clip for clip in clips if clip.split == split]
        if not clips:
            raise UsageError(f"{manifest}#{split}: no clip of the manifest has split {split!r}")
    return [ClipRef(str(resolve(manifest, clip)), tuple(clip.captions), str(resolve(manifest, clip)),
                    fields=_record(asdict(clip))) for clip in clips]


def _record(record: dict) -> dict[str, object]:
    extra = record.pop("extra", None) or {}
    return {**record, **extra}


def _shard_files(pattern: str) -> list[Path]:
    paths = expand_shards(pattern)
    if not paths:
        raise UsageError(f"{pattern}: matches no shard file")
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise UsageError(f"{pattern}: {len(missing)} of {len(paths)} shard files not found ({name_list(missing, 3)})")
    return paths


def _shard_clips(shard: Path) -> list[ClipRef]:
    """Each sample of an uncompressed tar: its audio member's place and its json's captions.

    Members are grouped by WebDataset's key (the member name up to the first dot of its last part).
    """
    samples: dict[str, dict[str, tarfile.TarInfo]] = {}
    try:
        with tarfile.open(shard, "r:") as tar:  # "r:": a compressed tar cannot be read by seeking
            for member in tar:
                if not member.isfile():
                    continue
                folder, _, base = member.name.rpartition("/")
                key, dot, ext = base.partition(".")
                if dot:
                    samples.setdefault(f"{folder}/{key}" if folder else key, {})[ext.lower()] = member
            records = {key: _json_record(tar, shard, members["json"]) for key, members in samples.items()
                       if "json" in members}
    except (tarfile.TarError, OSError) as e:
        raise ShardError(f"{shard}: not a readable uncompressed tar ({one_line(e)}); clips are read by seeking, "
                         "so shards must be plain, uncompressed tars") from None
    clips = []
    for key, members in samples.items():
        audio = [m for ext, m in members.items() if f".{ext}" in AUDIO_SUFFIXES]
        if not audio:
            raise ShardError(f"{shard}: sample {key!r} has no audio member ({', '.join(sorted(members))})")
        record = records.get(key, {})
        clips.append(ClipRef(f"{shard}:{audio[0].name}", tuple(record.get("captions", ())), str(shard),
                             audio[0].offset_data, audio[0].size, record))
    return clips


def _json_record(tar: tarfile.TarFile, shard: Path, member: tarfile.TarInfo) -> dict:
    where = f"{shard}:{member.name}"
    try:
        record = json.loads(tar.extractfile(member).read())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ShardError(f"{where}: not valid JSON ({one_line(e)})") from None
    captions = record.get("captions", []) if isinstance(record, dict) else None
    if not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
        raise ShardError(f"{where}: 'captions' must be a list of strings")
    return record


# --- decoding one clip ------------------------------------------------------------------------


def _read_member(clip: ClipRef) -> bytes:
    try:
        with open(clip.path, "rb") as f:
            f.seek(clip.offset)
            data = f.read(clip.size)
    except OSError as e:
        raise AudioError(f"{clip.name}: cannot read the shard ({one_line(e.strerror or e)})") from None
    if len(data) != clip.size:
        raise AudioError(f"{clip.name}: the shard ends inside this member ({len(data)} of {clip.size} bytes)")
    return data


def decode_clip(clip: ClipRef, sample_rate: int, clip_samples: int, crop: str,
                rng: np.random.Generator | None, fill: str = "repeat",
                augment: WaveAugment = WaveAugment()) -> np.ndarray:
    """``(clip_samples,)`` float32: the clip decoded at ``sample_rate`` and cropped, or filled as
    ``fill`` says (the model's ``short_clip``) when shorter; random crops only: then ``augment``-ed."""
    source = clip.path if clip.offset < 0 else _read_member(clip)
    if crop == "start":  # decodes only the first clip_samples samples
        with closing(iter_windows(source, sample_rate, clip_samples, policy="start", name=clip.name,
                                  fill=fill)) as windows:
            return next(windows)
    wave = load_audio(source, sample_rate, name=clip.name)  # one decoding pass (iter_windows would take two)
    return augment(fit_length(wave, clip_samples, "random", rng=rng, fill=fill)[0], sample_rate, rng)


class ClipDataset(torch.utils.data.Dataset):
    """Map-style: ``dataset[i]`` is ``(i, waveform or None, caption, cause or None)`` for epoch
    ``epoch``; every random choice comes from ``default_rng([seed, epoch, i])``."""

    def __init__(self, clips: list[ClipRef], *, sample_rate: int, clip_samples: int, crop: str,
                 seed: int | None, epoch: int, fill: str = "repeat", augment: WaveAugment = WaveAugment(),
                 mixture: TaskMixture | None = None):
        self.clips, self.sample_rate, self.clip_samples = clips, sample_rate, clip_samples
        self.crop, self.seed, self.epoch, self.fill = crop, seed, epoch, fill
        self.augment, self.mixture = augment, mixture

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> tuple[int, np.ndarray | None, str | Question, str | None]:
        """With a task ``mixture`` (random crops only) the text is a drawn :class:`Question`."""
        clip = self.clips[index]
        if self.crop == "random":
            rng = np.random.default_rng([self.seed, self.epoch, index])
            if self.mixture is not None:
                caption = self.mixture.draw(clip.fields, rng)
            elif len(clip.captions) > 1:
                caption = clip.captions[int(rng.integers(len(clip.captions)))]
            else:
                caption = clip.captions[0]
        else:
            rng, caption = None, clip.captions[0]
        try:
            wave = decode_clip(clip, self.sample_rate, self.clip_samples, self.crop, rng, self.fill, self.augment)
            return index, wave, caption, None
        except AudioError as e:
            message = one_line(e)
            return index, None, caption, message.removeprefix(f"{clip.name}: ")


def _as_list(items: list) -> list:
    return items


def _batches(dataset: ClipDataset, steps: list[list[int]], first_step: int, workers: int) -> Iterator[Batch]:
    """The batches of ``steps`` (lists of clip indices), numbered from ``first_step``."""
    if workers > 0 and steps:
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=steps, num_workers=workers,
                                             collate_fn=_as_list)
        decoded = iter(loader)
    else:
        decoded = ([dataset[i] for i in step] for step in steps)
    for step, items in enumerate(decoded, first_step):
        good = [(i, wave, text) for i, wave, text, cause in items if cause is None]
        waves = [wave for _, wave, _ in good]
        questions = [text for _, _, text in good if isinstance(text, Question)]
        yield Batch(
            epoch=dataset.epoch,
            step=step,
            waveforms=torch.from_numpy(np.stack(waves)) if waves else torch.zeros(0, dataset.clip_samples),
            captions=[q.answer for q in questions] if questions else [text for _, _, text in good],
            indices=[i for i, _, _ in good],
            failures=[(i, dataset.clips[i].name, cause) for i, _, _, cause in items if cause is not None],
            prompts=[q.prompt for q in questions],
        )


# --- the public classes -----------------------------------------------------------------------


def _count(value: object, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise UsageError(f"{what} must be a whole number of at least {minimum}, got {value!r}")
    return int(value)


def _audio_args(sample_rate: object, clip_samples: object, workers: object) -> tuple[int, int, int]:
    rate = _count(sample_rate, "sample_rate", 1)
    if not MIN_RATE <= rate <= MAX_RATE:
        raise UsageError(f"sample_rate {rate} Hz is outside the accepted range {MIN_RATE}-{MAX_RATE} Hz")
    return rate, _count(clip_samples, "clip_samples", 1), _count(workers, "workers", 0)


def _fill(fill: object) -> str:
    if fill not in FILLS:
        raise UsageError(f"fill must be one of {', '.join(FILLS)}, got {fill!r}")
    return fill


class TrainData:
    """The training clips of ``sources``, as seeded, rank-sharded, resumable batches (module docstring)."""

    def __init__(self, sources: Sequence[str | Path], *, sample_rate: int, clip_samples: int,
                 global_batch_size: int, seed: int, rank: int = 0, world_size: int = 1, workers: int = 0,
                 crop: str = "random", fill: str = "repeat", augment: WaveAugment = WaveAugment(),
                 mixture: TaskMixture | None = None):
        self.sample_rate, self.clip_samples, self.workers = _audio_args(sample_rate, clip_samples, workers)
        self.fill = _fill(fill)
        self.augment = augment
        self.global_batch_size = _count(global_batch_size, "global_batch_size", 1)
        self.seed = _count(seed, "seed", 0)
        self.world_size = _count(world_size, "world_size", 1)
        self.rank = _count(rank, "rank", 0)
        if self.rank >= self.world_size:
            raise UsageError(f"rank {self.rank} is out of range for world_size {self.world_size}")
        if self.global_batch_size % self.world_size:
            raise UsageError(f"global_batch_size {self.global_batch_size} is not divisible by "
                             f"world_size {self.world_size}")
        if crop not in CROPS:
            raise UsageError(f"crop must be one of {', '.join(CROPS)}, got {crop!r}")
        self.crop = crop
        self.clips, self.uncaptioned = index_sources(sources)
        self.mixture, self.unanswerable = mixture, 0
        if mixture is not None:  # audio pretraining: a clip answering none of the tasks cannot be used
            answerable = [clip for clip in self.clips if mixture.questions(clip.fields)]
            self.clips, self.unanswerable = answerable, len(self.clips) - len(answerable)
        if len(self.clips) < self.global_batch_size:
            raise UsageError(f"{len(self.clips)} usable clips, fewer than global_batch_size "
                             f"{self.global_batch_size}: not one full step")

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def local_batch_size(self) -> int:
        return self.global_batch_size // self.world_size

    @property
    def steps_per_epoch(self) -> int:
        return len(self.clips) // self.global_batch_size

    def order(self, epoch: int) -> np.ndarray:
        """Every clip index, in epoch ``epoch``'s order."""
        return np.random.default_rng([self.seed, _count(epoch, "epoch", 0)]).permutation(len(self.clips))

    def step_indices(self, epoch: int, step: int) -> list[int]:
        """The clip indices of this rank's part of step ``step`` of epoch ``epoch``."""
        return self._steps(self.order(epoch), step, step + 1)[0]

    def _steps(self, order: np.ndarray, first: int, end: int) -> list[list[int]]:
        b, start = self.local_batch_size, self.rank * self.local_batch_size
        return [order[s * self.global_batch_size + start:][:b].tolist() for s in range(first, end)]

    def batches(self, epoch: int, start_step: int = 0) -> Iterator[Batch]:
        """This rank's batches of epoch ``epoch`` from step ``start_step`` to the epoch's end."""
        start_step = _count(start_step, "start_step", 0)
        if start_step > self.steps_per_epoch:
            raise UsageError(f"start_step {start_step} is beyond the epoch's {self.steps_per_epoch} steps")
        dataset = ClipDataset(self.clips, sample_rate=self.sample_rate, clip_samples=self.clip_samples,
                              crop=self.crop, seed=self.seed, epoch=_count(epoch, "epoch", 0), fill=self.fill,
                              augment=self.augment, mixture=self.mixture)
        steps = self._steps(self.order(epoch), start_step, self.steps_per_epoch)
        return _batches(dataset, steps, start_step, self.workers)


class ValData:
    """Every captioned clip of ``sources`` once, in index order, in batches of ``batch_size`` (the last
    may be smaller), cropped to its first ``clip_samples`` samples. A batch's captions are each
    clip's first caption; ``captions[i]`` holds all of clip ``i``'s, for retrieval against every
    caption."""

    def __init__(self, sources: Sequence[str | Path], *, sample_rate: int, clip_samples: int,
                 batch_size: int = 32, workers: int = 0, fill: str = "repeat"):
        self.sample_rate, self.clip_samples, self.workers = _audio_args(sample_rate, clip_samples, workers)
        self.fill = _fill(fill)
        self.batch_size = _count(batch_size, "batch_size", 1)
        self.clips, self.uncaptioned = index_sources(sources)

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def captions(self) -> list[list[str]]:
        return [list(clip.captions) for clip in self.clips]

    @property
    def names(self) -> list[str]:
        return [clip.name for clip in self.clips]

    def batches(self) -> Iterator[Batch]:
        dataset = ClipDataset(self.clips, sample_rate=self.sample_rate, clip_samples=self.clip_samples,
                              crop="start", seed=None, epoch=0, fill=self.fill)
        n = len(self.clips)
        steps = [list(range(start, min(start + self.batch_size, n))) for start in range(0, n, self.batch_size)]
        return _batches(dataset, steps, 0, self.workers)
