"""LAION-CLAP's ``.pt`` checkpoints (``laion_clap``): the one place where their keys map onto clapkit's.

A LAION file holds ``{"state_dict": ...}`` (often with ``module.`` prefixes from DDP). Its HTSAT
(``audio_branch``) keeps the timm/Swin names clapkit's HTSAT also uses, its RoBERTa (``text_branch``)
Hugging Face's names, so the mapping is by prefix, plus:

- the projections are ``nn.Sequential`` (``.0`` / ``.2`` -> ``linear1`` / ``linear2``);
- ``logit_scale_a`` scales audio->text (clapkit's ``logit_scale``), ``logit_scale_t`` text->audio;
- dropped by name: the front end LAION computes inside the encoder (torchlibrosa STFT kernels and
  mel bank; clapkit derives its own from the config), HTSAT's AudioSet heads (``tscam_conv``,
  ``head``), the ``audio_transform`` / ``text_transform`` MLPs used only by LAION's MLP loss, and
  transformers' legacy ``position_ids`` / ``token_type_ids`` buffers.

Relative-position indices and attention masks are kept: the loader checks them against the ones
clapkit derives. Which built-in config a file needs is read from its shapes.
"""
from __future__ import annotations

import re

import torch

from ...errors import WeightsError

_PREFIXES = [("audio_branch.", "audio.encoder."), ("text_branch.", "text.encoder."),
             ("audio_projection.0.", "audio_projection.linear1."), ("audio_projection.2.", "audio_projection.linear2."),
             ("text_projection.0.", "text_projection.linear1."), ("text_projection.2.", "text_projection.linear2."),
             ("logit_scale_a", "logit_scale"), ("logit_scale_t", "logit_scale_text")]
_DROPPED = re.compile(r"^(audio_branch\.(spectrogram_extractor|logmel_extractor|tscam_conv|head)\."
                      r"|(audio|text)_transform\."
                      r"|text_branch\.embeddings\.(position_ids|token_type_ids)$)")


def strip_module_prefix(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys without the ``module.`` a DDP-wrapped model saved them with."""
    return {k.removeprefix("module."): v for k, v in state_dict.items()}


def is_laion_state_dict(state_dict: dict[str, torch.Tensor]) -> bool:
    return any(k.removeprefix("module.").startswith("audio_branch.") for k in state_dict)


def detect_laion_variant(state_dict: dict[str, torch.Tensor]) -> str:
    """The built-in config a LAION state dict needs: HTSAT-tiny or -base, with or without fusion."""
    state_dict = strip_module_prefix(state_dict)
    patch = state_dict.get("audio_branch.patch_embed.proj.weight")
    if patch is None or "text_branch.pooler.dense.weight" not in state_dict:
        raise WeightsError("a LAION-CLAP checkpoint with an HTSAT audio branch and a RoBERTa text branch was "
                           "expected (the PANN/CNN14 and BERT/T5 variants are not supported)")
    fusion = any(k.startswith("audio_branch.patch_embed.fusion_model.") for k in state_dict)
    sizes = {96: "tiny", 128: "base"}
    if patch.shape[0] not in sizes:
        raise WeightsError(f"a LAION HTSAT with patch dimension {patch.shape[0]}: not HTSAT-tiny (96) or -base (128)")
    return f"laion-htsat-{sizes[patch.shape[0]]}" + ("-fusion" if fusion else "")


def convert_laion_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """LAION keys renamed to clapkit's, what clapkit does not build dropped, scalars made (1,)."""
    out = {}
    for key, value in strip_module_prefix(state_dict).items():
        if _DROPPED.search(key):
            continue
        for old, new in _PREFIXES:
            if key.startswith(old):
                key = new + key[len(old):]
                break
        if key.startswith("logit_scale"):
            value = value.reshape(1)
        out[key] = value
    return out
