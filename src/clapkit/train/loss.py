"""Contrastive losses over the global batch: CLIP's softmax loss and SigLIP's pairwise sigmoid loss.

Both take the model's outputs as they are (un-normalised ``audio_features`` / ``text_features``,
the exponentiated ``logit_scale``), normalise the features, and score every audio against every
text of the GLOBAL batch: under torch.distributed the other side's features are all-gathered with
their gradients. ``caption_ids`` (:func:`caption_ids`) marks identical captions, which are never
negatives of each other.

Distributed exactness (both losses). The single-process loss over a global batch of B pairs is a
sum of per-row terms divided by B, and each row's term needs only its own row of one side and the
whole other side. Rank r, holding rows R_r (any sizes), computes only its rows against the gathered
side: ``local_r = N / B · Σ_{i in R_r} row_i``, so that ``Σ_r local_r = N · L``.
- ``all_gather``'s backward sums, over all ranks, the gradients each rank's copy of a gathered
  slice received and hands each rank the sum for its own slice. Rank r's features therefore get
  ``∂(Σ_s local_s)/∂f_r = N · ∂L/∂f_r``: every term, including those where rank r's rows are other
  ranks' negatives. The replicated ``logit_scale`` / ``logit_bias`` get ``∂local_r/∂scale`` on
  rank r, and these sum over ranks to ``N · ∂L/∂scale``.
- DDP (and FSDP) average gradients over the N ranks, which cancels the factor N: every parameter
  gets exactly ∂L/∂θ, for uneven slices too since the divisor is the global B.
- The value of ``local_r`` is not L, so the returned tensor is ``local_r + (L - local_r).detach()``
  with ``L = all_reduce(local_r) / N``: the value is the single-process loss on every rank and the
  gradient is that of ``local_r``.
Each rank builds b_r × B logits, never B × B. Assumes gradients averaged over ranks (DDP, FSDP),
not summed.
"""
from __future__ import annotations

import hashlib

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError

LOSSES = ("clip", "sigmoid")
MAX_LOGIT_SCALE = 100.0  # as open_clip: the learnt log-scale is capped at ln 100
SIGLIP_LOGIT_BIAS_INIT = -10.0  # SigLIP's initial bias (with log-scale ln 10): starts near all-negative


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _gather(t: torch.Tensor, with_grad: bool) -> tuple[torch.Tensor, int]:
    """Every rank's (b_r, ...) ``t`` concatenated in rank order, and where this rank's rows start."""
    if not _distributed():
        return t, 0
    rank, world = dist.get_rank(), dist.get_world_size()
    size = torch.tensor([t.shape[0]], device=t.device)
    sizes = [torch.empty_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    sizes = [int(s) for s in sizes]
    # Collectives need one shape on every rank: pad to the largest slice, drop the padding after.
    padded = torch.cat([t, t.new_zeros((max(sizes) - t.shape[0], *t.shape[1:]))]).contiguous()
    if with_grad:
        from torch.distributed.nn.functional import all_gather

        parts = all_gather(padded)
    else:
        parts = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(parts, padded)
    return torch.cat([part[:n] for part, n in zip(parts, sizes)]), sum(sizes[:rank])


def gather_with_grad(t: torch.Tensor) -> torch.Tensor:
    """Every rank's (b_r, ...) ``t`` concatenated in rank order (b_r may differ), with gradients:
    the backward sums every rank's gradient for this rank's slice. ``t`` itself when
    torch.distributed is not initialised or has one rank."""
    return _gather(t, with_grad=True)[0]


def gather_no_grad(t: torch.Tensor) -> torch.Tensor:
    """As :func:`gather_with_grad`, without autograd (integer ids, labels)."""
    return _gather(t, with_grad=False)[0]


def _global_value(local: torch.Tensor) -> torch.Tensor:
    """``local`` with its value replaced by the mean over ranks, its gradient untouched."""
    if not _distributed():
        return local
    mean = local.detach().clone()
    dist.all_reduce(mean)
    mean /= dist.get_world_size()
    return local + (mean - local.detach())


def _check(audio: torch.Tensor, text: torch.Tensor, ids: torch.Tensor | None) -> None:
    if audio.ndim != 2 or audio.shape != text.shape:
        raise UsageError(f"contrastive loss: audio features {tuple(audio.shape)} and text features "
                         f"{tuple(text.shape)} must be two (batch, dim) tensors of one shape")
    if ids is not None and tuple(ids.shape) != (audio.shape[0],):
        raise UsageError(f"contrastive loss: caption_ids {tuple(ids.shape)} must be ({audio.shape[0]},)")


def _positives(b: int, caption_ids: torch.Tensor | None, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's b rows against the B columns of the global batch: each row's own column (b,),
    and the positives (b, B): its own pair and, with ``caption_ids``, every pair with its caption."""
    ids = torch.zeros(b, dtype=torch.long) if caption_ids is None else caption_ids
    all_ids, offset = _gather(ids.to(device, torch.long), with_grad=False)
    own = offset + torch.arange(b, device=device)
    positive = own[:, None] == torch.arange(all_ids.shape[0], device=device)[None, :]
    if caption_ids is not None:
        positive |= all_ids[offset:offset + b, None] == all_ids[None, :]
    return own, positive


class ClipLoss(nn.Module):
    """CLIP's symmetric softmax loss over the global batch: the mean of audio->text and text->audio
    cross-entropies, each pair's own partner the target.

    ``forward(audio_features, text_features, logit_scale, caption_ids=None)``: features (b, D) as
    the model returns them (normalised here), ``logit_scale`` already exponentiated (0-dim or (1,)),
    used as ``logit_scale.clamp(max=100)``; ``logit_scale_text``, when given (LAION's second scale),
    scales the text->audio direction instead. Pairs whose ``caption_ids`` are equal (other than a
    row's own pair) are left out of each other's softmax, in both directions. Distributed: see the
    module docstring; the value is the single-process loss on every rank.
    """

    def __init__(self, max_logit_scale: float = MAX_LOGIT_SCALE) -> None:
        super().__init__()
        self.max_logit_scale = max_logit_scale

    def forward(self, audio_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor,
                caption_ids: torch.Tensor | None = None, logit_scale_text: torch.Tensor | None = None) -> torch.Tensor:
        _check(audio_features, text_features, caption_ids)
        audio = F.normalize(audio_features, dim=-1)
        text = F.normalize(text_features, dim=-1)
        own, positive = _positives(audio.shape[0], caption_ids, audio.device)
        # Same caption, other pair: not a negative -> -inf before the softmax (own pair kept).
        masked = positive.clone()
        masked[torch.arange(own.shape[0], device=own.device), own] = False
        scale = logit_scale.clamp(max=self.max_logit_scale)
        text_scale = scale if logit_scale_text is None else logit_scale_text.clamp(max=self.max_logit_scale)
        audio_to_text = (scale * audio @ gather_with_grad(text).T).masked_fill(masked, float("-inf"))
        text_to_audio = (text_scale * text @ gather_with_grad(audio).T).masked_fill(masked, float("-inf"))
        # Local rows only, summed, over 2·B, times N (module docstring: exact under DDP averaging).
        rows = (F.cross_entropy(audio_to_text, own, reduction="sum")
                + F.cross_entropy(text_to_audio, own, reduction="sum"))
        world = dist.get_world_size() if _distributed() else 1
        return _global_value(rows * world / (2 * positive.shape[1]))


class SigLipLoss(nn.Module):
    """SigLIP's pairwise sigmoid loss over the global batch (Zhai et al. 2023):
    ``-1/B · Σ_ij log σ(z_ij · (scale · cos_ij + bias))``, z = +1 for a pair's own partner and for
    pairs with equal ``caption_ids``, -1 elsewhere.

    ``forward(audio_features, text_features, logit_scale, logit_bias, caption_ids=None)``:
    ``logit_scale`` exponentiated (clamped at 100, as :class:`ClipLoss`) and ``logit_bias`` are the
    model's learnt parameters; SigLIP initialises the log-scale at ln 10 and the bias at -10
    (``SIGLIP_LOGIT_BIAS_INIT``). Audio rows are local, texts gathered: the sum over rows covers
    every pair once. Distributed: see the module docstring.
    """

    def __init__(self, max_logit_scale: float = MAX_LOGIT_SCALE) -> None:
        super().__init__()
        self.max_logit_scale = max_logit_scale

    def forward(self, audio_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor,
                logit_bias: torch.Tensor, caption_ids: torch.Tensor | None = None) -> torch.Tensor:
        _check(audio_features, text_features, caption_ids)
        audio = F.normalize(audio_features, dim=-1)
        text = F.normalize(text_features, dim=-1)
        _, positive = _positives(audio.shape[0], caption_ids, audio.device)
        scale = logit_scale.clamp(max=self.max_logit_scale)
        logits = scale * audio @ gather_with_grad(text).T + logit_bias
        signs = positive.to(logits.dtype) * 2 - 1
        world = dist.get_world_size() if _distributed() else 1
        return _global_value(-F.logsigmoid(signs * logits).sum() * world / positive.shape[1])


def build_loss(name: str) -> nn.Module:
    """``"clip"`` -> :class:`ClipLoss`, ``"sigmoid"`` -> :class:`SigLipLoss`."""
    if name == "clip":
        return ClipLoss()
    if name == "sigmoid":
        return SigLipLoss()
    raise UsageError(f"--loss: unknown {name!r}; known: {', '.join(LOSSES)}")


def caption_ids(captions: list[str]) -> torch.Tensor:
    """A stable 63-bit id per caption (blake2b of its UTF-8 text, not Python's salted ``hash``):
    equal texts, equal ids, in every process and run. (n,) int64, all non-negative."""
    for caption in captions:
        if not isinstance(caption, str):
            raise UsageError(f"caption_ids: captions must be strings, got {type(caption).__name__}")
    return torch.tensor([int.from_bytes(hashlib.blake2b(c.encode("utf-8"), digest_size=8).digest(), "big") >> 1
                         for c in captions], dtype=torch.long)
