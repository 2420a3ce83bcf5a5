"""The one place where msclap checkpoint keys are mapped onto clapkit's module tree."""
from __future__ import annotations

import re

import torch

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

# Keys that released files carry but that clapkit computes itself: torchlibrosa's STFT kernels
# (we use torch.stft with the same periodic Hann window) and the legacy transformers<4.27 GPT-2/BERT
# buffers (causal mask, masked_bias, position_ids).
_DROPPED = re.compile(r"(spectrogram_extractor\.stft\.conv_(real|imag)\.weight"
                      r"|\.attn\.(bias|masked_bias)|embeddings\.position_ids)$")


def detect_msclap_variant(state_dict: dict[str, torch.Tensor]) -> str | None:
    """Which msclap release a raw state dict comes from, judged by its keys (None if not msclap)."""
    if "clap_project.prefix_const" in state_dict:
        return "msclap-clapcap"
    if any(k.startswith("audio_encoder.base.htsat.") for k in state_dict):
        return "msclap-2023"
    if "audio_encoder.base.conv_block1.conv1.weight" in state_dict:
        return "msclap-2022"
    return None


def convert_msclap_state_dict(state_dict: dict[str, torch.Tensor], variant: str) -> dict[str, torch.Tensor]:
    """Rename msclap keys to clapkit's, drop buffers clapkit derives itself, and store integer
    index buffers (saved as float32 in the released files) as int64. Unknown keys are kept as they
    are so that the strict load that follows names them."""
    if variant not in _PREFIXES:
        raise KeyError(f"no msclap key mapping for variant {variant!r}")
    out = {}
    for key, value in state_dict.items():
        if _DROPPED.search(key):
            continue
        new_key = key
        for old, new in _PREFIXES[variant]:
            if key.startswith(old):
                new_key = new + key[len(old):]
                break
        if key.endswith(("relative_position_index", "num_batches_tracked")):
            value = value.round().long()
        out[new_key] = value
    return out
