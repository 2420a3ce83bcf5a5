"""Turn one source (an audio file, or a note, score or speech that :mod:`.synth` renders) into one
stored clip.

Decode the first ``max_seconds`` with :func:`clapkit.audio.io.read_audio` (the decoder inference
uses: soundfile, PyAV for what libsndfile cannot read) or render the source, mix to mono, resample once with soxr to the
corpus rate, cut to ``max_seconds``, drop silent or too-short audio, write FLAC. A file the decoder
refuses is dropped with its reason; a truncated file keeps what decodes (the decoder warns).
Runs in worker processes: everything here is a plain function of picklable arguments.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr

from ...audio.io import AudioError, describe, read_audio
from .synth import Rendered, RenderError


@dataclass(frozen=True)
class ProcessingParams:
    """Everything that changes a stored clip; part of every clip's cache key."""

    sample_rate: int = 44100
    max_seconds: float = 10.0
    min_seconds: float = 0.2
    silence_dbfs: float = -60.0
    version: int = 3  # 3: decoded by clapkit.audio.io (refuses samples beyond ±1e6 and implausible rates)

    def fingerprint(self) -> str:
        return repr(sorted(asdict(self).items()))


@dataclass(frozen=True)
class FileSegment:
    """``seconds`` of a long file from ``start``: further clips of a long recording (music, ambience)."""

    path: str
    start: float
    seconds: float

    def inputs(self) -> tuple[str, ...]:
        return (self.path,)

    def identity(self) -> str:
        return repr(("segment", self.start, self.seconds))

    def render(self, sample_rate: int) -> np.ndarray:
        data, rate = read_audio(self.path, max_seconds=self.start + self.seconds)
        return to_mono_at_rate(data[int(self.start * rate):], rate, sample_rate)


def to_mono_at_rate(data: np.ndarray, rate: int, sample_rate: int) -> np.ndarray:
    mono = data.mean(axis=1) if data.ndim == 2 else data
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def check_audio(mono: np.ndarray, params: ProcessingParams) -> str | None:
    """Why ``mono`` is dropped, or None when it is kept."""
    if mono.size < params.min_seconds * params.sample_rate:
        return "too short"
    if not np.isfinite(mono).all():
        return "not finite"
    peak = float(np.abs(mono).max())
    if peak <= 10 ** (params.silence_dbfs / 20):
        return "silent"
    return None


def process(source: str | Rendered | FileSegment, out_path: str, params: ProcessingParams) -> dict:
    """Make one clip. Returns ``{"status": "kept", "duration", "sha256"}`` or
    ``{"status": "dropped", "reason"}``; never raises for bad audio."""
    try:
        if isinstance(source, str):
            data, rate = read_audio(source, max_seconds=params.max_seconds)
            mono = to_mono_at_rate(data, rate, params.sample_rate)
        else:
            mono = np.asarray(source.render(params.sample_rate), dtype=np.float32)
    except RenderError as e:
        return {"status": "dropped", "reason": f"render error: {e}"}
    except AudioError as e:  # the message is "<file>: <cause>"; the report names the file already
        path = source if isinstance(source, str) else getattr(source, "path", "")
        return {"status": "dropped", "reason": f"decode error: {str(e).removeprefix(describe(path) + ': ')}"}
    mono = mono[: int(params.max_seconds * params.sample_rate)]
    reason = check_audio(mono, params)
    if reason:
        return {"status": "dropped", "reason": reason}
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    soundfile.write(tmp, np.clip(mono, -1.0, 1.0), params.sample_rate, format="FLAC", subtype="PCM_16")
    os.replace(tmp, out)
    return {
        "status": "kept",
        "duration": round(mono.size / params.sample_rate, 4),
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
    }
