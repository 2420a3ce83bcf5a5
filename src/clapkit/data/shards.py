"""WebDataset shards of a manifest: write, verify, read.

Each clip becomes one sample of two members, ``<key>.flac`` and ``<key>.json``. The key is a
stable clip id: the first 24 hex digits of sha1 of the clip's manifest ``path`` (no dots or
slashes, so WebDataset groups the pair correctly). The JSON holds the clip's manifest record plus
``key`` and ``pcm_sha256``.

Audio: a FLAC source is stored byte for byte; anything else is decoded with
:func:`clapkit.audio.io.read_audio` (the decoder inference uses: soundfile, PyAV for m4a/webm/...)
and re-encoded as FLAC (16-bit for sources of at most 16 bits, else 24-bit; float and 32-bit
sources are therefore quantised to 24 bits). Shards hold whole clips only: a source that the
decoder refuses, or that ends early or is damaged (a ``TruncatedAudioWarning`` from the decoder,
or a FLAC source that does not decode to its end), is left out and listed as a failure.

What "the audio matches the manifest" means (checked by :func:`verify_shards`):

* ``pcm_sha256`` is the sha256 of the stored FLAC's samples decoded as interleaved little-endian
  int32; the stored audio must decode to it (catches damaged or altered FLAC bytes);
* for a FLAC source, the stored bytes' sha256 must equal the manifest's ``sha256`` (the manifest
  hashes file bytes, and the bytes were copied);
* for another format, with ``check_sources=True`` (default) the source file, re-encoded the same
  way, must decode to the same ``pcm_sha256`` (a file's bytes and its FLAC re-encoding cannot be
  compared directly, so samples are).
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
import random
import re
import tarfile
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from clapkit.audio.io import (
    AudioError,
    TruncatedAudioWarning,
    audio_info,
    describe,
    read_audio,
)
from clapkit.data.manifest import Clip, read_manifest, resolve
from clapkit.errors import ShardError

# Source codecs stored as 16-bit FLAC: libsndfile subtypes and FFmpeg decoders of at most 16 bits.
AT_MOST_16_BITS = {"PCM_S8", "PCM_U8", "PCM_16", "ULAW", "ALAW", "GSM610",
                   "pcm_s8", "pcm_u8", "pcm_s16le", "pcm_s16be", "pcm_mulaw", "pcm_alaw"}


@dataclass
class ShardReport:
    """What :func:`write_shards` did: shard files written, clips written, clips that failed."""

    shards: list[Path] = field(default_factory=list)
    written: int = 0
    failures: list[str] = field(default_factory=list)


@dataclass
class VerifyReport:
    """What :func:`verify_shards` found: clips checked and one line per problem."""

    checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def clip_key(clip: Clip) -> str:
    return hashlib.sha1(clip.path.encode("utf-8")).hexdigest()[:24]


def pcm_sha256(flac: bytes) -> str:
    samples, _ = sf.read(io.BytesIO(flac), dtype="int32", always_2d=True)
    return hashlib.sha256(np.ascontiguousarray(samples, dtype="<i4").tobytes()).hexdigest()


def encode_flac(path: Path) -> bytes:
    """The FLAC bytes stored for an audio file: the file itself if FLAC, else a re-encoding of what
    ``read_audio`` decodes. Raises ``AudioError`` for a file the decoder refuses."""
    info = audio_info(path)
    if info.format == "FLAC":
        return path.read_bytes()
    samples, rate = read_audio(path)  # float32 holds every sample of up to 24 bits exactly
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="FLAC", subtype="PCM_16" if info.codec in AT_MOST_16_BITS else "PCM_24")
    return buffer.getvalue()


def stored_pcm_sha256(path: Path, flac: bytes) -> str:
    """``pcm_sha256`` of the FLAC stored for ``path``; AudioError where a FLAC source copied byte for
    byte does not decode to its end (truncated or damaged)."""
    try:
        return pcm_sha256(flac)
    except RuntimeError as e:  # soundfile's LibsndfileError
        reason = getattr(e, "error_string", None) or str(e)
        raise AudioError(f"{describe(path)}: FLAC that does not decode to its end ({reason}); FLAC sources "
                         "are stored byte for byte, so re-encode or drop it") from None


@contextmanager
def whole_files_only() -> Iterator[None]:
    """Within: the decoder's TruncatedAudioWarning is raised as an exception, so a partly decodable
    source is reported instead of stored cut short."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncatedAudioWarning)
        yield


def clip_record(clip: Clip) -> dict:
    return json.loads(clip.to_json())


def sample_for(manifest: Path, clip: Clip) -> dict:
    """The shard sample of ``clip``; AudioError (or TruncatedAudioWarning, under ``whole_files_only``)
    where its audio cannot be stored whole."""
    audio = resolve(manifest, clip)
    flac = encode_flac(audio)
    record = clip_record(clip) | {"key": clip_key(clip), "pcm_sha256": stored_pcm_sha256(audio, flac)}
    return {"__key__": record["key"], "flac": flac, "json": json.dumps(record, ensure_ascii=False).encode("utf-8")}


def write_shards(manifest: str | Path, pattern: str, *, max_clips: int = 1000, max_bytes: float = 1e9) -> ShardReport:
    """Write every clip of ``manifest`` to tar shards named by ``pattern`` (``out/shard-%06d.tar``).

    A shard is closed once it holds ``max_clips`` clips or ``max_bytes`` bytes (checked before each
    clip, so a shard can exceed ``max_bytes`` by one clip). A clip whose audio is missing or
    unreadable is left out and listed in the report's ``failures``; the others are written.
    """
    import webdataset as wds

    manifest = Path(manifest)
    if "%" not in pattern:
        raise ShardError(f"{pattern}: shard pattern needs a number field such as %06d")
    if max_clips < 1 or max_bytes <= 0:
        raise ShardError(f"max_clips ({max_clips}) and max_bytes ({max_bytes}) must be positive")
    try:
        first = Path(pattern % 0)
    except (TypeError, ValueError):
        raise ShardError(f"{pattern}: shard pattern must have exactly one number field such as %06d") from None
    first.parent.mkdir(parents=True, exist_ok=True)
    report = ShardReport()
    with wds.ShardWriter(
        pattern, maxcount=max_clips, maxsize=max_bytes, verbose=0, post=lambda name: report.shards.append(Path(name))
    ) as writer:
        for clip in read_manifest(manifest):
            try:
                with whole_files_only():
                    sample = sample_for(manifest, clip)
            except (AudioError, TruncatedAudioWarning) as e:
                report.failures.append(str(e))
                continue
            writer.write(sample)
            report.written += 1
    return report


def expand_shards(shards: str | Path | Iterable[str | Path]) -> list[Path]:
    """Shard files from a list, a printf pattern (``shard-%06d.tar``), a brace pattern
    (``shard-{000000..000009}.tar``) or a glob (``shard-*.tar``)."""
    if not isinstance(shards, (str, Path)):
        return [Path(s) for s in shards]
    spec = str(shards)
    if "{" in spec:
        from braceexpand import braceexpand

        return [Path(s) for s in braceexpand(spec)]
    if "%" in spec:
        spec = re.sub(r"%0?\d*d", "*", spec)
    return [Path(s) for s in sorted(glob.glob(spec))]


def read_tar_samples(path: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {extension: bytes}) for each key of a tar, members grouped by key in file order."""
    groups: dict[str, dict[str, bytes]] = {}
    with tarfile.open(path) as tar:
        for member in tar:
            if not member.isfile():
                continue
            name = member.name.rsplit("/", 1)[-1]
            key, _, ext = name.partition(".")
            data = tar.extractfile(member).read()
            groups.setdefault(key, {})
            if ext in groups[key]:
                groups[key][f"{ext}#dup"] = data
            else:
                groups[key][ext] = data
    yield from groups.items()


def check_sample(manifest: Path, clip: Clip, members: dict[str, bytes], where: str, check_sources: bool) -> list[str]:
    if set(members) != {"flac", "json"}:
        return [f"{where}: expected members .flac and .json, found {', '.join(sorted(members))}"]
    try:
        record = json.loads(members["json"])
    except json.JSONDecodeError as e:
        return [f"{where}: metadata is not valid JSON ({e.msg})"]
    problems = []
    expected = clip_record(clip)
    for name, value in expected.items():
        if record.get(name) != value:
            problems.append(f"{where}: metadata {name!r} is {record.get(name)!r}, manifest has {value!r}")
    try:
        stored_pcm = pcm_sha256(members["flac"])
    except (sf.LibsndfileError, RuntimeError) as e:
        return problems + [f"{where}: stored audio does not decode ({e})"]
    if stored_pcm != record.get("pcm_sha256"):
        problems.append(f"{where}: stored audio samples do not match the recorded pcm_sha256")
    if hashlib.sha256(members["flac"]).hexdigest() == clip.sha256:
        return problems
    source = resolve(manifest, clip)
    if source.suffix.lower() == ".flac":
        problems.append(f"{where}: stored FLAC bytes differ from the manifest's sha256")
    elif check_sources:
        try:
            with whole_files_only():
                source_pcm = pcm_sha256(encode_flac(source))
        except (AudioError, TruncatedAudioWarning) as e:
            problems.append(f"{where}: cannot compare with the source, {e}")
        else:
            if source_pcm != stored_pcm:
                problems.append(f"{where}: stored audio differs from the source {source}")
    return problems


def verify_shards(
    manifest: str | Path, shard_pattern: str | Path | Iterable[str | Path], *, check_sources: bool = True
) -> VerifyReport:
    """Check that every clip of ``manifest`` is in the shards exactly once, with its metadata and
    audio (see the module docstring for what "audio matches" means); returns every problem found."""
    manifest = Path(manifest)
    clips = {clip_key(clip): clip for clip in read_manifest(manifest)}
    paths = expand_shards(shard_pattern)
    if not paths:
        raise ShardError(f"{shard_pattern}: no shard files found")
    report = VerifyReport()
    seen: dict[str, Path] = {}
    for path in paths:
        try:
            samples = list(read_tar_samples(path))
        except (tarfile.TarError, OSError) as e:
            report.problems.append(f"{path}: not a readable tar ({e})")
            continue
        for key, members in samples:
            where = f"{path}:{key}"
            if key not in clips:
                report.problems.append(f"{where}: key not in the manifest")
                continue
            if key in seen or any(ext.endswith("#dup") for ext in members):
                report.problems.append(f"{where}: clip {clips[key].path} stored more than once")
                continue
            seen[key] = path
            report.checked += 1
            report.problems += check_sample(manifest, clips[key], members, where, check_sources)
    report.problems += [
        f"{manifest}: clip {clip.path} is in no shard" for key, clip in clips.items() if key not in seen
    ]
    return report


def decode_sample(sample: dict) -> tuple[torch.Tensor, int, dict]:
    samples, rate = sf.read(io.BytesIO(sample["flac"]), dtype="float32", always_2d=True)
    return torch.from_numpy(samples.T.copy()), int(rate), json.loads(sample["json"])


def shard_reader(shards: str | Path | Iterable[str | Path], *, shuffle: int = 0, seed: int = 0):
    """A WebDataset pipeline yielding ``(waveform [channels, frames] float32, sample_rate, metadata)``.

    ``shuffle`` > 0 shuffles shards and samples (buffer of that many samples) with ``seed``; it
    splits shards across DataLoader workers (WebDataset's default) on a single node.
    """
    import webdataset as wds

    urls = [str(p) for p in expand_shards(shards)]
    if not urls:
        raise ShardError(f"{shards}: no shard files found")
    dataset = wds.WebDataset(urls, shardshuffle=len(urls) if shuffle else False, seed=seed, empty_check=False)
    if shuffle:
        dataset = dataset.shuffle(shuffle, rng=random.Random(seed))
    return dataset.map(decode_sample)
