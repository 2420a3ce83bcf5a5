"""msclap's released ``.pth`` checkpoints: the one place where their keys map onto clapkit's module tree.

The filter renames keys by prefix and drops, by name, exactly what clapkit does not build:

- the classification heads CLAP never uses (HTSAT's ``tscam_conv`` / ``head``, CNN14's
  ``fc_audioset``, BERT's ``pooler``): built, they would be parameters without a gradient path;
- legacy buffers computed on the fly (torchlibrosa's STFT kernels, transformers<4.27 GPT-2/BERT
  ``attn.bias`` / ``masked_bias`` / ``position_ids``).

Buffers clapkit derives from the config (mel bank, relative-position indices, attention masks) are
kept under their new names: the loader checks them against the constructed ones and drops them.
Every other key is kept as it is, so that the strict load that follows names any stranger.
"""
from __future__ import annotations

import re

import torch

from ...errors import WeightsError

# (msclap prefix, clapkit prefix), first match wins. Encoder internals keep msclap's names.
_PREFIXES = {
    "msclap-2023": [
        ("audio_encoder.base.htsat.logmel_extractor.melW", "audio.frontend.mel_basis"),
        ("audio_encoder.base.htsat.", "audio.encoder."),
        ("audio_encoder.projection.", "audio_projection."),
        ("caption_encoder.base.", "text.encoder."),
        ("caption_encoder.projection.", "text_projection."),
        ("logit_scale", "logit_scale"),
    ],
    "msclap-2022": [
        ("audio_encoder.base.logmel_extractor.melW", "audio.frontend.mel_basis"),
        ("audio_encoder.base.", "audio.encoder."),
        ("audio_encoder.projection.", "audio_projection."),
        ("caption_encoder.base.", "text.encoder."),
        ("caption_encoder.projection.", "text_projection."),
        ("logit_scale", "logit_scale"),
    ],
    "msclap-clapcap": [
        ("clap.base.htsat.logmel_extractor.melW", "clap.audio.frontend.mel_basis"),
        ("clap.base.htsat.", "clap.audio.encoder."),
        ("clap.projection.", "clap.audio_projection."),
        ("gpt.", "decoder."),
        ("clap_project.", "mapper."),
    ],
}

LEGACY_BUFFERS = re.compile(r"(spectrogram_extractor\.stft\.conv_(real|imag)\.weight"
                            r"|\.attn\.(bias|masked_bias)|embeddings\.position_ids)$")
UNUSED_HEADS = re.compile(r"(audio\.encoder\.(tscam_conv|head|fc_audioset)|text\.encoder\.pooler\.dense)\.(weight|bias)$")


def detect_msclap_variant(state_dict: dict[str, torch.Tensor]) -> str | None:
    """Which msclap release a raw state dict comes from, judged by its keys (None if not msclap)."""
    if "clap_project.prefix_const" in state_dict:
        return "msclap-clapcap"
    if any(k.startswith("audio_encoder.base.htsat.") for k in state_dict):
        return "msclap-2023"
    if "audio_encoder.base.conv_block1.conv1.weight" in state_dict:
        return "msclap-2022"
    return None


def convert_msclap_state_dict(state_dict: dict[str, torch.Tensor], variant: str, *,
                              keep_heads: bool = False) -> dict[str, torch.Tensor]:
    """msclap keys renamed to clapkit's, legacy buffers and (unless ``keep_heads``, for parity
    checks of the classifier) the unused heads dropped; index buffers saved as float32 in the
    released files become int64 and the scalar ``logit_scale`` a 1-element tensor."""
    if variant not in _PREFIXES:
        raise WeightsError(f"no msclap key mapping for variant {variant!r}; known: {', '.join(_PREFIXES)}")
    out = {}
    for key, value in state_dict.items():
        if LEGACY_BUFFERS.search(key):
            continue
        new_key = _rename(key, variant)
        if not keep_heads and UNUSED_HEADS.search(new_key):
            continue
        if key.endswith(("relative_position_index", "num_batches_tracked")):
            value = value.round().long()
        if new_key == "logit_scale":
            value = value.reshape(1)  # msclap stores a 0-dim scalar
        out[new_key] = value
    return out


def _rename(key: str, variant: str) -> str:
    for old, new in _PREFIXES[variant]:
        if key.startswith(old):
            return new + key[len(old):]
    return key
