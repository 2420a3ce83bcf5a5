"""Training augmentations: of each clip's waveform (:class:`WaveAugment`: a noise floor,
band-limiting, attenuation) and SpecAugment (Park et al., 2019) on the audio encoder's log-mel input.

The waveform augmentations act on the decoded random crop (:mod:`clapkit.train.data`), every draw
from the clip's own seeded generator.

SpecAugment's log-mel is computed inside the model (its front end), so its masks are applied by a forward
pre-hook on the encoder that the trainer attaches: the library's model code and saved weights know
nothing of it, and inference never sees it. Masked cells take the clip's mean log-mel, which is what
zero is after the encoder's own normalisation (bn0). Masks are drawn from torch's generator, which
the trainer seeds and checkpoints, so runs stay reproducible and resume exactly.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import UsageError

BAND_LIMIT_RATES = (8000, 11025, 16000)
NOISE_SNR_DB = (10.0, 40.0)
NOISE_SLOPES = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
NOISE_BANK_SEED = 20231205


def band_limited(wave: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """``wave`` as if recorded at a lower rate (telephone, old files): down to a random rate of
    :data:`BAND_LIMIT_RATES` below ``sample_rate`` and back up, so nothing is left above its Nyquist."""
    import soxr

    rates = [r for r in BAND_LIMIT_RATES if r < sample_rate]
    if not rates:
        return wave
    low = int(rates[int(rng.integers(len(rates)))])
    restored = soxr.resample(soxr.resample(wave, sample_rate, low), low, sample_rate)
    return np.ascontiguousarray(np.resize(restored, wave.shape), dtype=np.float32)


def attenuated(wave: np.ndarray, gain_db: float, rng: np.random.Generator) -> np.ndarray:
    """``wave`` made quieter by a uniform random 0 to ``gain_db`` dB: the corpus's sounds are mostly
    normalised near full scale, recordings in the wild are not."""
    return (wave * np.float32(10 ** (-rng.uniform(0, gain_db) / 20))).astype(np.float32)


@functools.lru_cache(maxsize=2)
def noise_bank(samples: int) -> np.ndarray:
    """``(len(NOISE_SLOPES), 2 * samples)`` float32: unit-RMS Gaussian noise whose power falls as
    ``f ** -slope`` (0: white, 1: pink, 2: brown), one row per slope of :data:`NOISE_SLOPES`, from a
    fixed seed, so every process holds the same bank. A clip's noise is a slice of it: an FFT per
    clip would slow a step of the shipped recipe by a fifth."""
    length = 2 * samples
    spectrum = np.fft.rfft(np.random.default_rng(NOISE_BANK_SEED).standard_normal((len(NOISE_SLOPES), length)))
    frequency = np.arange(spectrum.shape[1], dtype=np.float64)
    frequency[0] = 1.0
    spectrum *= frequency ** (-np.asarray(NOISE_SLOPES)[:, None] / 2)
    spectrum[:, 0] = 0.0
    noise = np.fft.irfft(spectrum, n=length)
    return (noise / noise.std(axis=1, keepdims=True)).astype(np.float32)


def with_noise(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``wave`` plus a recording's noise floor: a random stretch of a random row of :func:`noise_bank`
    (white to brown) at a uniform random SNR of :data:`NOISE_SNR_DB`. Synthetic sounds are digitally
    clean, recordings in the wild are not; a model trained only on the clean ones reads the hiss
    itself as content."""
    bank = noise_bank(len(wave))
    row, start = int(rng.integers(len(bank))), int(rng.integers(len(wave) + 1))
    return noise_at_snr(wave, bank[row, start:start + len(wave)], rng.uniform(*NOISE_SNR_DB))


def noise_at_snr(wave: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``wave`` plus unit-RMS ``noise`` scaled to ``snr_db`` below the wave's RMS (float32); a silent
    wave stays silent."""
    wave_rms = np.sqrt(np.mean(np.square(wave, dtype=np.float64)))
    return (wave + np.float32(wave_rms * 10 ** (-snr_db / 20)) * noise).astype(np.float32)


@dataclass(frozen=True)
class WaveAugment:
    """What is done to each random training crop, in recording order, every draw from the clip's
    seeded generator: with probability ``noise`` a noise floor is added (:func:`with_noise`), with
    probability ``band_limit`` it is band-limited (:func:`band_limited`), and it is made quieter by
    up to ``gain_db`` dB (:func:`attenuated`). An augmentation that is off draws nothing, so turning
    one on leaves runs without it as they were."""

    band_limit: float = 0.0
    gain_db: float = 0.0
    noise: float = 0.0

    def __post_init__(self):
        for name in ("band_limit", "noise"):
            if not 0 <= getattr(self, name) <= 1:
                raise UsageError(f"{name} is a probability within [0, 1], got {getattr(self, name)}")
        if not 0 <= self.gain_db <= 60:
            raise UsageError(f"gain_db is an attenuation within [0, 60] dB, got {self.gain_db}")

    def __call__(self, wave: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
        if self.noise > 0 and rng.random() < self.noise:
            wave = with_noise(wave, rng)
        if self.band_limit > 0 and rng.random() < self.band_limit:
            wave = band_limited(wave, sample_rate, rng)
        if self.gain_db > 0:
            wave = attenuated(wave, self.gain_db, rng)
        return wave


@dataclass(frozen=True)
class SpecAugment:
    time_masks: int
    max_frames: int
    freq_masks: int
    max_bands: int

    @classmethod
    def parse(cls, spec: str) -> SpecAugment:
        """``"TxW,FxV"``: T time masks of up to W frames each, F mel-band masks of up to V bands."""
        match = re.fullmatch(r"\s*(\d+)x(\d+)\s*,\s*(\d+)x(\d+)\s*", spec)
        if not match:
            raise UsageError(f"--spec-augment: expected TIMExFRAMES,MELxBANDS such as 2x50,2x8, not {spec!r}")
        return cls(*map(int, match.groups()))

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        """``features``: (B, C, frames, bands) log-mel; a masked copy."""
        batch, _, frames, bands = features.shape
        keep = torch.ones(batch, 1, frames, bands, dtype=torch.bool, device=features.device)
        for count, width, axis, size in ((self.time_masks, self.max_frames, 2, frames),
                                         (self.freq_masks, self.max_bands, 3, bands)):
            for _ in range(count):
                keep &= ~_stripes(batch, width, size, axis, features.device)
        fill = features.mean(dim=(2, 3), keepdim=True)
        return torch.where(keep, features, fill)


def _stripes(batch: int, max_width: int, size: int, axis: int, device: torch.device) -> torch.Tensor:
    """One stripe per clip along ``axis`` (2: frames, 3: bands), width uniform in [0, max_width]."""
    width = torch.randint(0, min(max_width, size) + 1, (batch,))
    start = (torch.rand(batch) * (size - width + 1)).long()
    position = torch.arange(size)
    stripe = (position >= start[:, None]) & (position < (start + width)[:, None])  # (batch, size)
    shape = (batch, 1, size, 1) if axis == 2 else (batch, 1, 1, size)
    return stripe.view(shape).to(device)


def attach(encoder: nn.Module, augment: SpecAugment) -> torch.utils.hooks.RemovableHandle:
    """Mask the encoder's first input whenever it runs in training mode."""

    def hook(module: nn.Module, args: tuple) -> tuple | None:
        if not module.training:
            return None
        features, *rest = args
        return (augment(features), *rest)

    return encoder.register_forward_pre_hook(hook)
