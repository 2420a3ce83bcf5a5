"""Audio decoding, channel handling and resampling: any source -> float32 mono at the model's rate.

This module is clapkit's one audio decoder: inference, the dataset adapters, the shard writer and
the offline corpus builder all read audio through it.

Sources:

- a file path (``str`` / ``os.PathLike``), a binary file object or encoded ``bytes``: decoded with
  soundfile (WAV, FLAC, Ogg Vorbis/Opus, MP3, AIFF, ...) and, when PyAV (``pip install av``) is
  installed, with FFmpeg for everything else (m4a/AAC, ALAC, video containers: first audio stream).
  Paths are opened here, in binary mode, and the open file is handed to the decoders, so any name
  the operating system accepts works (spaces, a leading dash, bytes that are not UTF-8). File
  objects are read from their beginning. The file's own sample rate is used.
- a numpy array or a torch tensor: ``(time,)`` (mono) or ``(channels, time)``, the layout
  ``torchaudio.load`` returns, for both. A 2-D array with more than ``MAX_ARRAY_CHANNELS`` rows is
  refused: it is almost surely ``(time, channels)`` (what ``soundfile.read`` returns) and needs ``.T``.
  Arrays and tensors need ``source_rate``. Integer samples are PCM and are scaled by their type's
  range (int16 / 32768) like soundfile does; float samples are taken as they are, without clipping
  or normalisation, so clipped or loud signals pass through unchanged up to ``MAX_SAMPLE``.

``audio_info`` reads a file's header (rate, channels, length, format) and ``read_audio`` decodes a
file at its own rate, ``(frames, channels)``, optionally only its first seconds.

Channels are mixed to mono by their mean, before resampling (resampling is linear, so this equals
mixing the resampled channels, for a fraction of the work). ``msclap_compat=True`` instead reproduces msclap's
``load_audio_into_tensor``: every channel is resampled, then the channels are concatenated end to
end (``(C, T).reshape(-1)``: all of channel 0, then all of channel 1, ...).

Resampling uses soxr (quality ``"HQ"``), which is deterministic, and is skipped when the rates are
equal. The streaming path (``stream_audio``) decodes blocks of at most ``BLOCK_FRAMES`` frames and
``BLOCK_SAMPLES`` samples and feeds a ``soxr.ResampleStream`` pieces sized so that each output piece
is about ``BLOCK_FRAMES`` samples, so memory stays bounded whatever the file's length, channel count
or rate; its output equals the one-shot ``soxr.resample`` of the whole signal (measured difference 0).

Every bad input raises ``AudioError`` with a one-line message ``"<input>: <cause>"``:

- rates outside ``MIN_RATE``..``MAX_RATE`` Hz, in a file's header or as ``source_rate``/``sample_rate``;
- samples that are NaN, infinite or beyond ``±MAX_SAMPLE``: they usually mean a broken upstream step
  (or float audio scaled as integers), and they would turn every embedding of the clip into NaN;
- files that are missing, unreadable, not regular files, empty or that no decoder can read.

Truncated or damaged files: what decodes is used. Where a decoder fails partway through a file,
where the file holds less audio data than its header declares, or where fewer frames decode than
the header declares (beyond codec padding), the frames decoded so far are kept and one
``TruncatedAudioWarning`` names the file. (When libsndfile fails partway, PyAV decodes the rest up
to the damage; FLAC frames are then exact.) Only a file from which nothing decodes is an error.
"""
from __future__ import annotations

import errno
import io
import math
import numbers
import os
import re
import stat
import warnings
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import BinaryIO, Union

import numpy as np
import soundfile as sf
import soxr
import torch

from ..errors import AudioError
from .formats import AUDIO_SUFFIXES  # noqa: F401  (re-exported: where it used to live)

try:
    import av
except ImportError:  # optional: only needed for formats libsndfile cannot read
    av = None

AudioSource = Union[str, os.PathLike, BinaryIO, bytes, np.ndarray, torch.Tensor]

BLOCK_FRAMES = 1 << 16
BLOCK_SAMPLES = 8 * BLOCK_FRAMES  # a decoded block holds at most this many samples, all channels together
RESAMPLE_QUALITY = "HQ"
MIN_RATE, MAX_RATE = 1_000, 768_000  # accepted sample rates, Hz (files, arrays and targets)
MAX_SAMPLE = 1e6  # float audio is expected around [-1, 1]; beyond this the power spectrum overflows
MAX_ARRAY_CHANNELS = 64  # guards against a (time, channels) array read as (channels, time)
CODEC_PADDING_FRAMES = 4096  # encoder delay / padding a header may count but a decoder drops


class TruncatedAudioWarning(UserWarning):
    """A file's audio data ends early or is damaged; the audio decoded up to there is used."""


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says: rate, channels, length (None where the container does not say)."""

    sample_rate: int
    channels: int
    frames: int | None
    duration: float | None  # seconds
    format: str  # container: libsndfile's major format ("WAV", "FLAC", ...) or FFmpeg's demuxer name
    codec: str  # libsndfile's subtype ("PCM_16", "VORBIS", ...) or FFmpeg's decoder name ("aac", ...)


def describe(source: AudioSource) -> str:
    """The name an error message uses for ``source`` (a path, a file object's name, "array", ...).

    Names are printable on one line whatever the file system holds: bytes that are not UTF-8 are
    shown as ``\\xe9`` and control characters as escapes."""
    if isinstance(source, (str, os.PathLike)):
        return _printable(os.fsdecode(os.fspath(source)))
    if isinstance(source, np.ndarray):
        return "array"
    if isinstance(source, torch.Tensor):
        return "tensor"
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<bytes>"
    if hasattr(source, "read"):
        name = getattr(source, "name", None)
        return _printable(os.fsdecode(name)) if isinstance(name, (str, bytes)) and name else "<file object>"
    return f"<{type(source).__name__}>"


def load_audio(source: AudioSource, sample_rate: int, *, source_rate: int | None = None,
               msclap_compat: bool = False, name: str | None = None) -> np.ndarray:
    """Decode ``source`` to a 1-D float32 waveform at ``sample_rate``.

    ``source_rate`` is the rate of an array or tensor source (required there, refused for files).
    ``name`` overrides how error messages refer to the input (e.g. ``"array #3"`` in a batch).
    """
    name = name or describe(source)
    sample_rate = _check_rate(sample_rate, name, "sample_rate")
    if not _is_array(source):
        return np.concatenate(list(stream_audio(source, sample_rate, source_rate=source_rate,
                                                msclap_compat=msclap_compat, name=name)))
    if source_rate is None:
        raise AudioError(f"{name}: source_rate is required for arrays and tensors")
    rate = _check_rate(source_rate, name, "source_rate")
    frames = _array_frames(source, name)
    if msclap_compat:
        wave = _resample(frames, rate, sample_rate).T.reshape(-1)
    else:
        wave = _resample(_mix(frames), rate, sample_rate)
    if not len(wave):
        raise AudioError(_too_short(name, sample_rate))
    return np.ascontiguousarray(wave)


def stream_audio(source: AudioSource, sample_rate: int, *, source_rate: int | None = None,
                 msclap_compat: bool = False, name: str | None = None) -> Iterator[np.ndarray]:
    """Yield ``source`` as consecutive 1-D float32 chunks at ``sample_rate``, in bounded memory.

    Their concatenation is ``load_audio(source, ...)``. Files are decoded block by block
    (msclap-compat multi-channel files take one decoding pass per channel); an array or tensor
    is already in memory and comes as a single chunk. Errors in the middle of a file (NaN
    samples, ...) are raised when the stream reaches them.
    """
    name = name or describe(source)
    sample_rate = _check_rate(sample_rate, name, "sample_rate")
    if _is_array(source):
        yield load_audio(source, sample_rate, source_rate=source_rate, msclap_compat=msclap_compat, name=name)
        return
    if source_rate is not None:
        raise AudioError(f"{name}: source_rate is only for arrays and tensors; files carry their own rate")
    produced = 0
    for rate, blocks in _channel_passes(source, name, msclap_compat):
        for chunk in _resample_blocks(blocks, rate, sample_rate):
            produced += len(chunk)
            yield chunk
    if not produced:
        raise AudioError(_too_short(name, sample_rate))


def audio_info(source: AudioSource, *, name: str | None = None) -> AudioInfo:
    """The header of an audio file (path, binary file object or bytes), without decoding its samples.

    Raises ``AudioError`` for what ``load_audio`` would refuse before decoding (missing or
    unreadable file, unknown format, implausible rate). ``frames`` and ``duration`` are None when
    the container does not say (count them with ``stream_audio(source, info.sample_rate)``).
    """
    name = name or describe(source)
    with _opened(source, name) as handle, _decode(handle, name) as decoded:
        return decoded.info


def read_audio(source: AudioSource, *, max_seconds: float | None = None,
               name: str | None = None) -> tuple[np.ndarray, int]:
    """Decode a file at its own rate: ``(float32 array (frames, channels), sample rate)``.

    No resampling or mixing. ``max_seconds`` stops decoding after that many seconds (rounded up to
    a whole frame), so memory stays bounded by it; without it the whole file is decoded.
    """
    name = name or describe(source)
    if max_seconds is not None and not (isinstance(max_seconds, numbers.Real) and max_seconds > 0):
        raise AudioError(f"{name}: invalid max_seconds {max_seconds!r} (need a positive number)")
    with _opened(source, name) as handle, _decode(handle, name) as decoded:
        rate = decoded.info.sample_rate
        limit = math.inf if max_seconds is None or math.isinf(max_seconds) else max(1, math.ceil(max_seconds * rate))
        blocks, frames = [], 0
        for block in decoded.blocks:
            blocks.append(block[: limit - frames] if frames + len(block) > limit else block)
            frames += len(blocks[-1])
            if frames >= limit:
                break
    return np.concatenate(blocks), rate


# --- arrays ---------------------------------------------------------------------------------


def _is_array(source: object) -> bool:
    return isinstance(source, (np.ndarray, torch.Tensor))


def _array_frames(source: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    """A (channels, time) or (time,) array or tensor as (time, channels) float32, validated."""
    if isinstance(source, torch.Tensor):
        tensor = source.detach().cpu()
        array = (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()
    else:
        array = source
    shape = tuple(array.shape)
    if array.ndim not in (1, 2):
        raise AudioError(f"{name}: expected 1 or 2 dimensions, got shape {shape}")
    if array.ndim == 2 and shape[0] > MAX_ARRAY_CHANNELS:
        raise AudioError(f"{name}: shape {shape} would be {shape[0]} channels; 2-D audio is (channels, time), "
                         f"and this looks like (time, channels): transpose it (.T)")
    frames = array[:, None] if array.ndim == 1 else array.T
    if frames.size == 0:
        raise AudioError(f"{name}: zero-length audio (shape {shape})")
    return _checked(_to_float32(frames, name), name)


def _to_float32(frames: np.ndarray, name: str) -> np.ndarray:
    """C-contiguous float32 copy (never aliasing the caller's array); integers are scaled PCM."""
    kind = frames.dtype.kind
    if kind == "i":
        frames = frames / -float(np.iinfo(frames.dtype).min)
    elif kind == "u":
        half = (float(np.iinfo(frames.dtype).max) + 1) / 2
        frames = (frames - half) / half
    elif kind != "f":
        raise AudioError(f"{name}: unsupported sample type {frames.dtype} (need float or integer PCM)")
    with np.errstate(over="ignore"):  # values beyond float32 become inf, rejected by _checked
        return np.array(frames, dtype=np.float32, order="C")


# --- shared steps ---------------------------------------------------------------------------


def _check_rate(rate: object, name: str, what: str) -> int:
    """``rate`` as an int, or AudioError unless it is a whole number within MIN_RATE..MAX_RATE."""
    if isinstance(rate, float) and rate.is_integer():
        rate = int(rate)
    if isinstance(rate, bool) or not isinstance(rate, numbers.Integral) or rate <= 0:
        raise AudioError(f"{name}: invalid {what} {rate!r} (need a positive whole number of Hz)")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError(f"{name}: {what} {rate} Hz is outside the accepted range {MIN_RATE}-{MAX_RATE} Hz")
    return int(rate)


def _checked(block: np.ndarray, name: str) -> np.ndarray:
    """``block`` unchanged, or AudioError for NaN, infinite or implausibly large samples."""
    if not block.size:
        return block
    high, low = float(block.max()), float(block.min())
    if not (math.isfinite(high) and math.isfinite(low)):
        raise AudioError(f"{name}: contains NaN or infinite samples")
    peak = max(high, -low)
    if peak > MAX_SAMPLE:
        limit = f"{MAX_SAMPLE:.0e}".replace("e+0", "e")
        raise AudioError(f"{name}: samples reach {peak:.3g}; float audio is expected around [-1, 1] (limit ±{limit})")
    return block


def _mix(frames: np.ndarray) -> np.ndarray:
    """(time, channels) -> (time,) mean of the channels."""
    total = frames[:, 0].copy()
    for channel in range(1, frames.shape[1]):  # column adds: ~30x faster than frames.mean(axis=1)
        total += frames[:, channel]
    return total / np.float32(frames.shape[1])


def _resample(wave: np.ndarray, rate: int, sample_rate: int) -> np.ndarray:
    if rate == sample_rate:
        return wave
    return soxr.resample(wave, rate, sample_rate, quality=RESAMPLE_QUALITY)


def _too_short(name: str, sample_rate: int) -> str:
    return f"{name}: too short to resample (less than one sample at {sample_rate} Hz)"


def _resample_blocks(blocks: Iterator[np.ndarray], rate: int, sample_rate: int) -> Iterator[np.ndarray]:
    """Resample consecutive 1-D blocks as one signal (equal to ``_resample`` of their concatenation).

    Each block is fed in pieces whose output is about BLOCK_FRAMES samples, however large the
    ratio of the rates (soxr may hold a few pieces back and release them together)."""
    if rate == sample_rate:
        yield from blocks
        return
    stream = soxr.ResampleStream(rate, sample_rate, 1, dtype="float32", quality=RESAMPLE_QUALITY)
    piece = max(1, BLOCK_FRAMES * rate // sample_rate)
    for block in blocks:
        for start in range(0, len(block), piece):
            chunk = stream.resample_chunk(np.ascontiguousarray(block[start:start + piece]))
            if len(chunk):
                yield chunk
    tail = stream.resample_chunk(np.zeros(0, np.float32), last=True)
    if len(tail):
        yield tail


# --- opening files --------------------------------------------------------------------------


@contextmanager
def _opened(source: AudioSource, name: str) -> Iterator[BinaryIO]:
    """A seekable, non-empty binary file for ``source``; a path is opened (and closed) here."""
    if isinstance(source, (str, os.PathLike)):
        with _open_path(os.fspath(source), name) as handle:
            yield handle
        return
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(source))
    if not hasattr(source, "read"):
        raise AudioError(f"{name}: unsupported source type {type(source).__name__} "
                         "(need a path, binary file object, bytes, numpy array or torch tensor)")
    if not (hasattr(source, "seekable") and source.seekable()):
        source = io.BytesIO(source.read())  # decoders need to seek
    if source.seek(0, io.SEEK_END) == 0:
        raise AudioError(f"{name}: empty file (0 bytes)")
    yield source


def _open_path(path: str | bytes, name: str) -> BinaryIO:
    """The file at ``path`` opened for binary reading, or AudioError saying why it cannot be."""
    try:
        status = os.stat(path)
    except OSError as error:
        raise AudioError(f"{name}: {_os_cause(path, error)}") from None
    if stat.S_ISDIR(status.st_mode):
        raise AudioError(f"{name}: is a directory, not an audio file")
    if not stat.S_ISREG(status.st_mode):
        raise AudioError(f"{name}: not a regular file ({_file_kind(status.st_mode)})")
    if status.st_size == 0:
        raise AudioError(f"{name}: empty file (0 bytes)")
    try:
        return open(path, "rb")
    except OSError as error:
        raise AudioError(f"{name}: {_os_cause(path, error)}") from None


def _os_cause(path: str | bytes, error: OSError) -> str:
    if error.errno == errno.ENOENT and os.path.islink(path):
        return f"broken symbolic link to {_printable(os.fsdecode(os.readlink(path)))}"
    causes = {errno.ENOENT: "file not found", errno.ELOOP: "symbolic link loop",
              errno.EACCES: "permission denied", errno.EPERM: "permission denied",
              errno.ENOTDIR: "file not found (a folder on its path is a file)",
              errno.ENAMETOOLONG: "file name too long"}
    return causes.get(error.errno) or f"cannot open ({_reason(error)})"


def _file_kind(mode: int) -> str:
    kinds = [(stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")]
    return next((kind for test, kind in kinds if test(mode)), "a special file")


# --- decoding -------------------------------------------------------------------------------


@dataclass
class _Decoded:
    info: AudioInfo
    blocks: Iterator[np.ndarray]  # (frames, channels) float32, checked by _validated


class _DataEnded(Exception):
    """Raised by a block generator where the file's audio data ends early or is damaged."""


def _channel_passes(source: AudioSource, name: str, msclap_compat: bool) -> Iterator[tuple[int, Iterator[np.ndarray]]]:
    """``(rate, 1-D blocks)`` per pass over the file: one mixed pass, or one pass per channel when
    ``msclap_compat`` concatenates the channels (the next channel starts after the previous ends)."""
    with _opened(source, name) as handle:
        with _decode(handle, name) as decoded:
            rate, channels = decoded.info.sample_rate, decoded.info.channels
            concatenate = msclap_compat and channels > 1
            yield rate, _mono_blocks(decoded.blocks, 0 if concatenate else None)
        for channel in range(1, channels if concatenate else 1):
            with _decode(handle, name, warn=False) as decoded:
                yield rate, _mono_blocks(decoded.blocks, channel)


def _mono_blocks(blocks: Iterator[np.ndarray], channel: int | None) -> Iterator[np.ndarray]:
    """The mix of the channels (``channel=None``) or one channel, block by block."""
    for block in blocks:
        yield _mix(block) if channel is None else np.ascontiguousarray(block[:, channel])


@contextmanager
def _decode(handle: BinaryIO, name: str, warn: bool = True) -> Iterator[_Decoded]:
    """Open ``handle`` with soundfile, or with PyAV where libsndfile cannot."""
    handle.seek(0)
    try:
        audio = sf.SoundFile(handle)
    except (RuntimeError, TypeError, ValueError) as error:  # LibsndfileError; TypeError: a headerless RAW file
        soundfile_reason = _libsndfile_reason(error)
    else:
        with audio:
            info = _soundfile_info(audio, name)
            with closing(_validated(_soundfile_blocks(audio, handle, info), info, name, warn)) as blocks:
                yield _Decoded(info, blocks)
        return
    with _pyav_container(handle, name, soundfile_reason) as container:
        stream = _pyav_stream(container, name, soundfile_reason)
        info = _pyav_info(container, stream, name)
        with closing(_validated(_pyav_blocks(container, stream, info.channels), info, name, warn)) as blocks:
            yield _Decoded(info, blocks)


def _validated(blocks: Iterator[np.ndarray], info: AudioInfo, name: str, warn: bool) -> Iterator[np.ndarray]:
    """Checked blocks; where the data ends early, the blocks so far and one warning (an error if none)."""
    frames, problem = 0, None
    try:
        for block in blocks:
            frames += len(block)
            yield _checked(block, name)
    except _DataEnded as ended:
        problem = str(ended)
    problem = problem or _shortfall(info, frames)
    if not frames:
        raise AudioError(f"{name}: corrupt or truncated audio data ({problem})" if problem
                         else f"{name}: contains no audio samples (0 frames)")
    if problem and warn:
        declared = f" of {info.duration:.3f} s declared" if info.duration else ""
        warnings.warn(f"{name}: audio data ends early or is damaged ({problem}); using the "
                      f"{frames / info.sample_rate:.3f} s decoded{declared}", TruncatedAudioWarning)


def _shortfall(info: AudioInfo, frames: int) -> str | None:
    """Why ``frames`` decoded frames fall short of the header's count, or None (codec padding allowed)."""
    if info.frames is None or frames >= info.frames - max(info.frames // 100, CODEC_PADDING_FRAMES):
        return None
    return f"{frames} of the {info.frames} frames the header declares decode"


def _block_frames(channels: int) -> int:
    return max(1, min(BLOCK_FRAMES, BLOCK_SAMPLES // channels))


# --- soundfile (libsndfile) -----------------------------------------------------------------


def _soundfile_info(audio: sf.SoundFile, name: str) -> AudioInfo:
    rate = _check_rate(audio.samplerate, name, "header sample rate")
    frames = audio.frames if 0 <= audio.frames < 1 << 62 else None  # SF_COUNT_MAX: unknown length
    return AudioInfo(rate, audio.channels, frames, None if frames is None else frames / rate,
                     audio.format, audio.subtype)


def _soundfile_blocks(audio: sf.SoundFile, handle: BinaryIO, info: AudioInfo) -> Iterator[np.ndarray]:
    """(frames, channels) blocks. Where libsndfile fails partway (or reads nothing), PyAV goes on."""
    size, done = _block_frames(info.channels), 0
    while True:
        try:
            block = audio.read(size, dtype="float32", always_2d=True)
        except RuntimeError as error:  # soundfile's LibsndfileError
            yield from _pyav_resume(handle, info, done, f"libsndfile: {_libsndfile_reason(error)}")
            return
        if not len(block):
            break
        done += len(block)
        yield block
    short = _soundfile_short(audio.extra_info)
    if not done:
        yield from _pyav_resume(handle, info, 0, short)
    elif short:
        raise _DataEnded(short)


_OGG_SHORT = {"ended unexpectedly": "the Ogg stream ends unexpectedly",
              "lacks an end-of-stream bit": "the last Ogg page lacks its end-of-stream flag",
              "Junk after the last page": "an incomplete Ogg page at the end"}
_SHORT_CHUNK = re.compile(r"\b(?:data|SSND) : (\d+) \(should be (\d+)\)")


def _soundfile_short(log: str) -> str | None:
    """What libsndfile's parse log says about data missing from the file, or None."""
    for marker, reason in _OGG_SHORT.items():
        if marker in log:
            return reason
    for declared, present in _SHORT_CHUNK.findall(log):
        if int(present) < int(declared) != 0xFFFFFFFF:  # 0xFFFFFFFF: "size unknown" (streamed WAV)
            return f"the header declares {declared} bytes of audio data, the file holds {present}"
    return None


# --- PyAV (FFmpeg) --------------------------------------------------------------------------


@contextmanager
def _pyav_container(handle: BinaryIO, name: str, soundfile_reason: str) -> Iterator[object]:
    if av is None:
        raise AudioError(_undecodable(name, soundfile_reason, None))
    handle.seek(0)
    try:
        container = av.open(handle, "r")
    except Exception as error:  # PyAV raises many exception types for broken input
        raise AudioError(_undecodable(name, soundfile_reason, _reason(error))) from None
    try:
        yield container
    finally:
        container.close()


def _pyav_stream(container, name: str, soundfile_reason: str):
    """The first audio stream, with a decoder and a plausible rate and channel count."""
    try:
        streams = list(container.streams)
        audio = [stream for stream in streams if stream.type == "audio"]
        context = audio[0].codec_context if audio else None
        format_name = container.format.name
    except Exception as error:  # PyAV raises many exception types for broken input
        raise AudioError(f"{name}: unreadable stream header (PyAV: {_reason(error)})") from None
    if not audio:
        kinds = ", ".join(sorted({stream.type for stream in streams})) or "no streams"
        raise AudioError(f"{name}: no audio stream (the file holds {kinds})")
    if context is None or context.codec is None:
        raise AudioError(f"{name}: unsupported audio codec in a {format_name!r} container (FFmpeg has no "
                         f"decoder for it; libsndfile: {soundfile_reason})")
    return audio[0]


def _pyav_info(container, stream, name: str) -> AudioInfo:
    context = stream.codec_context
    rate = _check_rate(context.sample_rate, name, "header sample rate")
    if not context.channels:
        raise AudioError(f"{name}: the audio stream has no channels (codec {context.codec.name!r})")
    frames = _pyav_frames(container, stream, rate)
    return AudioInfo(rate, context.channels, frames, None if frames is None else frames / rate,
                     container.format.name, context.codec.name)


def _pyav_frames(container, stream, rate: int) -> int | None:
    """The length the container declares, in frames, or None."""
    if stream.duration and stream.duration > 0 and stream.time_base:
        return round(stream.duration * stream.time_base * rate)
    if container.duration and container.duration > 0:
        return round(container.duration * rate / av.time_base)
    return None


def _pyav_resume(handle: BinaryIO, info: AudioInfo, skip: int, reason: str | None) -> Iterator[np.ndarray]:
    """Blocks from PyAV after the first ``skip`` frames, for a file libsndfile stopped on; raises
    ``_DataEnded(reason)`` where PyAV cannot take over (and ``reason`` says something went wrong)."""
    try:
        handle.seek(0)
        container = av.open(handle, "r")
    except Exception:  # also: av is None. PyAV raises many exception types for broken input
        if reason:
            raise _DataEnded(reason) from None
        return
    with container:
        audio = container.streams.audio
        context = audio[0].codec_context if audio else None
        if context is None or (context.sample_rate, context.channels) != (info.sample_rate, info.channels):
            if reason:
                raise _DataEnded(reason)
            return
        for block in _pyav_blocks(container, audio[0], info.channels):
            if skip < len(block):
                yield block[skip:]
            skip = max(0, skip - len(block))


def _pyav_blocks(container, stream, channels: int) -> Iterator[np.ndarray]:
    """Decoded frames regrouped into (frames, channels) blocks of about ``_block_frames``; where
    decoding fails, the frames before the failure come first, then ``_DataEnded``."""
    size, pending, pending_frames, ended = _block_frames(channels), [], 0, None
    try:
        for planes in _pyav_planes(container, stream):
            pending.append(planes)
            pending_frames += planes.shape[1]
            if pending_frames >= size:
                yield np.concatenate(pending, axis=1).T
                pending, pending_frames = [], 0
    except _DataEnded as error:
        ended = error
    if pending:
        yield np.concatenate(pending, axis=1).T
    if ended:
        raise ended


def _pyav_planes(container, stream) -> Iterator[np.ndarray]:
    """(channels, frames) float32 arrays at the stream's declared rate and layout; raises
    ``_DataEnded`` where decoding fails."""
    context = stream.codec_context
    try:
        converter = av.AudioResampler(format="fltp", layout=context.layout, rate=context.sample_rate)
        frames = container.decode(stream)
    except Exception as error:  # PyAV raises many exception types for broken input
        raise _DataEnded(f"PyAV: {_reason(error)}") from None
    while True:
        try:
            frame = next(frames, None)
            converted = converter.resample(frame)  # frame None flushes
        except Exception as error:  # PyAV raises many exception types for broken input
            raise _DataEnded(f"PyAV: {_reason(error)}") from None
        for out in converted:
            yield out.to_ndarray()
        if frame is None:
            return


# --- messages -------------------------------------------------------------------------------


def _undecodable(name: str, soundfile_reason: str, pyav_reason: str | None) -> str:
    if not soundfile_reason.lower().startswith("format not recognised"):
        cause = "corrupt or truncated audio file"
    elif av is None:
        return (f"{name}: unsupported format (libsndfile: {soundfile_reason}); "
                "install PyAV (pip install av) to read m4a/AAC and video files")
    else:
        cause = "not a recognised audio file"
    details = f"libsndfile: {soundfile_reason}" + (f"; PyAV: {pyav_reason}" if pyav_reason else "")
    return f"{name}: {cause} ({details})"


def _libsndfile_reason(error: BaseException) -> str:
    """libsndfile's message; its MPEG reader calls a stream it cannot parse a missing file, but the
    file was opened here, so that one is reworded."""
    reason = _reason(error)
    return "cannot parse the stream" if reason.startswith("File does not exist") else reason


def _reason(error: BaseException) -> str:
    """A library error's own message, on one line, without the file name they prepend."""
    text = getattr(error, "error_string", None) or getattr(error, "strerror", None) or str(error)
    text = _printable(" ".join(str(text).split())).removeprefix("Error : ").rstrip(".")
    return text or type(error).__name__


def _printable(text: str) -> str:
    """``text`` safe to print on one line: undecodable bytes as ``\\xe9``, control characters escaped."""
    try:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # lone surrogates that are not escaped bytes
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return "".join(char if char.isprintable() else char.encode("unicode_escape").decode("ascii") for char in text)
