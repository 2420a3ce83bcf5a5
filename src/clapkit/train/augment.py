"""SpecAugment (Park et al., 2019) on the audio encoder's log-mel input, in training only.

The log-mel is computed inside the model (its front end), so the masks are applied by a forward
pre-hook on the encoder that the trainer attaches: the library's model code and saved weights know
nothing of it, and inference never sees it. Masked cells take the clip's mean log-mel, which is what
zero is after the encoder's own normalisation (bn0). Masks are drawn from torch's generator, which
the trainer seeds and checkpoints, so runs stay reproducible and resume exactly.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import UsageError


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
