"""Fit audio of any length to the model's clip length of N samples (7 s or 5 s at 44.1 kHz).

A clip of at most N samples is filled to N, whatever the policy (one window): by default tiled
exactly as msclap does, ``x.repeat(ceil(N / len))[:N]`` (``fill="repeat"``); LAION's
``"repeatpad"`` tiles it only as many whole times as fit and pads the rest with zeros; ``"pad"``
only pads. A longer clip (length L) is cut by a policy:

- ``"sliding"`` (default): every window ``[k·hop, k·hop + N)`` that fits, then, if audio is left
  after the last of them, one more window aligned to the end, ``[L - N, L)``, which overlaps the
  one before. Every sample is covered (for hop <= N) and the result does not depend on chance,
  unlike msclap's random crop. Average the windows' embeddings or keep them per window.
- ``"start"``: ``[0, N)``; only the first N samples of a file are decoded.
- ``"center"``: ``[(L - N) // 2, (L - N) // 2 + N)``.
- ``"random"``: ``[s, s + N)`` with ``s`` uniform in ``[0, L - N]``, drawn from ``rng``: a seed,
  a ``numpy.random.Generator`` or a ``torch.Generator``; None draws fresh entropy. A seed gives
  the same crop on every call; pass a generator to get a new crop per call (training).
- ``"whole"``: the whole clip as one window of length L (for models that take any length, such as
  LAION's fusion models); clips up to N are filled as above.

``fit_length`` works on a waveform in memory. ``iter_windows`` decodes a source (see
``clapkit.audio.io``) and yields the same windows; for files it streams, holding about
N + hop + one decoded block in memory. ``"center"`` and ``"random"`` need the length first,
so for a file they take one extra decoding pass.
"""
from __future__ import annotations

import numbers
from collections.abc import Callable, Iterator
from contextlib import closing
from typing import Union

import numpy as np
import torch

from .io import AudioSource, load_audio, stream_audio

POLICIES = ("sliding", "center", "start", "random", "whole")
FILLS = ("repeat", "repeatpad", "pad")
Rng = Union[int, np.random.Generator, torch.Generator, None]


def tile(wave: np.ndarray, clip_samples: int) -> np.ndarray:
    """msclap's repeat-tiling of a short clip: ``np.tile(wave, ceil(N / len))[:N]``."""
    return np.tile(wave, -(-clip_samples // len(wave)))[:clip_samples]


def fill(wave: np.ndarray, clip_samples: int, mode: str = "repeat") -> np.ndarray:
    """A clip of at most N samples brought to N: ``repeat`` (:func:`tile`), ``repeatpad`` (whole
    repeats, then zeros, as LAION) or ``pad`` (zeros)."""
    if mode == "repeat":
        return tile(wave, clip_samples)
    if mode == "repeatpad":
        wave = np.tile(wave, clip_samples // len(wave))
    return np.pad(wave, (0, clip_samples - len(wave)))


def fit_length(wave: np.ndarray, clip_samples: int, policy: str = "sliding", *,
               hop_samples: int | None = None, rng: Rng = None, fill: str = "repeat") -> np.ndarray:
    """Windows of a 1-D waveform, ``(num_windows, clip_samples)`` float32 (one row unless sliding;
    for ``"whole"``, one row of the clip's own length when it is longer)."""
    _check_policy(clip_samples, policy, hop_samples, rng, fill)
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1 or not len(wave):
        raise ValueError(f"fit_length needs a non-empty 1-D waveform, got shape {wave.shape}")
    windows = _windows(lambda: _once(wave), clip_samples, policy, hop_samples, rng, len(wave), fill)
    return np.stack(list(windows))


def iter_windows(source: AudioSource, sample_rate: int, clip_samples: int, *, policy: str = "sliding",
                 hop_samples: int | None = None, source_rate: int | None = None, msclap_compat: bool = False,
                 rng: Rng = None, name: str | None = None, fill: str = "repeat") -> Iterator[np.ndarray]:
    """Decode ``source`` (see ``load_audio`` for the arguments) and yield ``(clip_samples,)`` float32
    windows one at a time, equal to ``fit_length(load_audio(source, ...), ...)``'s rows.

    File sources are streamed: decoding errors are raised while iterating.
    """
    _check_policy(clip_samples, policy, hop_samples, rng, fill)
    if isinstance(source, (np.ndarray, torch.Tensor)):
        wave = load_audio(source, sample_rate, source_rate=source_rate, msclap_compat=msclap_compat, name=name)
        return _windows(lambda: _once(wave), clip_samples, policy, hop_samples, rng, len(wave), fill)

    def chunks() -> Iterator[np.ndarray]:
        return stream_audio(source, sample_rate, source_rate=source_rate, msclap_compat=msclap_compat, name=name)

    return _windows(chunks, clip_samples, policy, hop_samples, rng, None, fill)


def _once(wave: np.ndarray) -> Iterator[np.ndarray]:
    yield wave  # a generator, so that it can be closed like a file stream


def _check_policy(clip_samples: int, policy: str, hop_samples: int | None, rng: Rng, fill: str) -> None:
    if fill not in FILLS:
        raise ValueError(f"unknown fill {fill!r}; choose one of {', '.join(FILLS)}")
    if policy not in POLICIES:
        raise ValueError(f"unknown length policy {policy!r}; choose one of {', '.join(POLICIES)}")
    if not _positive_int(clip_samples):
        raise ValueError(f"clip_samples must be a positive integer, got {clip_samples!r}")
    if hop_samples is not None and (policy != "sliding" or not _positive_int(hop_samples)):
        raise ValueError(f"hop_samples must be a positive integer and needs policy='sliding', got {hop_samples!r}")
    if rng is not None and policy != "random":
        raise ValueError(f"rng is only used by policy='random', not {policy!r}")


def _positive_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0


def _windows(chunks: Callable[[], Iterator[np.ndarray]], clip_samples: int, policy: str,
             hop_samples: int | None, rng: Rng, length: int | None, fill_mode: str) -> Iterator[np.ndarray]:
    """The policy's windows of the signal that ``chunks()`` yields (``length`` if already known)."""
    if policy == "sliding":
        yield from _sliding(chunks(), clip_samples, hop_samples or clip_samples, fill_mode)
        return
    if policy == "whole":
        with closing(chunks()) as parts:
            wave = np.concatenate(list(parts))
        yield wave if len(wave) >= clip_samples else fill(wave, clip_samples, fill_mode)
        return
    if length is None and policy != "start":
        with closing(chunks()) as counting:
            length = sum(len(chunk) for chunk in counting)
    start = 0 if policy == "start" or length <= clip_samples else _crop_start(policy, length - clip_samples, rng)
    yield _crop(chunks(), clip_samples, start, fill_mode)


def _crop_start(policy: str, slack: int, rng: Rng) -> int:
    if policy == "center":
        return slack // 2
    if isinstance(rng, torch.Generator):
        return int(torch.randint(slack + 1, (1,), generator=rng))
    return int(np.random.default_rng(rng).integers(slack + 1))


def _crop(chunks: Iterator[np.ndarray], clip_samples: int, start: int, fill_mode: str) -> np.ndarray:
    """Samples ``[start, start + N)``, reading no further; the filled clip if the signal is shorter."""
    end, seen, pieces = start + clip_samples, 0, []
    with closing(chunks):
        for chunk in chunks:
            if seen + len(chunk) > start:
                pieces.append(chunk[max(start - seen, 0):end - seen])
            seen += len(chunk)
            if seen >= end:
                break
    wave = np.concatenate(pieces)
    return wave if len(wave) == clip_samples else fill(wave, clip_samples, fill_mode)


def _sliding(chunks: Iterator[np.ndarray], clip_samples: int, hop: int, fill_mode: str) -> Iterator[np.ndarray]:
    """Sliding windows plus an end-aligned last window, keeping only the samples still needed."""
    buffer, offset = np.zeros(0, np.float32), 0  # buffer[0] is sample number `offset`
    next_start = covered = total = 0
    for chunk in chunks:
        buffer = np.concatenate((buffer, chunk))
        total += len(chunk)
        while next_start + clip_samples <= total:
            yield buffer[next_start - offset:next_start - offset + clip_samples].copy()  # windows may overlap
            covered, next_start = next_start + clip_samples, next_start + hop
        keep = max(min(next_start, total - clip_samples), offset)  # the end window may need the last N
        buffer, offset = buffer[keep - offset:], keep
    if total < clip_samples:
        yield fill(buffer, clip_samples, fill_mode)
    elif covered < total:
        yield buffer[len(buffer) - clip_samples:].copy()
