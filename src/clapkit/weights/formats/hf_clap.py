"""Hugging Face ``ClapModel`` folders (``laion/clap-htsat-unfused``, ``-fused``, ``larger_clap_*``):
the one place where their config, feature-extraction settings and keys map onto clapkit's.

A folder holds ``config.json`` (``model_type: clap``), ``model.safetensors`` or ``pytorch_model.bin``
(read with ``weights_only=True``), ``preprocessor_config.json`` and the RoBERTa tokenizer files. The
clapkit config is built from the folder's own settings, not assumed:

- audio: the ``ClapAudioConfig`` as HTSAT arguments; the front end from the feature extractor
  (rate, window, hop, mels, band, window length, short-clip ``padding``). Its mel bank follows the
  extractor's ``truncation``: ``fusion`` uses the HTK bank without norm, ``rand_trunc`` librosa's
  Slaney bank, as ``ClapFeatureExtractor`` does;
- text: RoBERTa (clapkit's BERT with ``pad_token_id`` and its pooler), tokenizer = the folder;
- ``ClapProjectionLayer`` -> ``mlp`` projections; ``logit_scale_a`` / ``logit_scale_t``.

Keys: ``audio_model.audio_encoder`` uses transformers' Swin names (separate query/key/value, which
are concatenated into clapkit's ``qkv``), ``text_model`` the BERT names clapkit keeps.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from ...errors import WeightsError
from ...models.config import ModelConfig, parse_config

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt")

_AUDIO_RENAMES = [  # (transformers, clapkit) within one Swin block; the first match wins
    (".layernorm_before.", ".norm1."), (".layernorm_after.", ".norm2."),
    (".attention.self.relative_position_", ".attn.relative_position_"),
    (".attention.output.dense.", ".attn.proj."), (".intermediate.dense.", ".mlp.fc1."), (".output.dense.", ".mlp.fc2."),
]
_QKV = re.compile(r"^(.*)\.attention\.self\.(query|key|value)\.(weight|bias)$")
_DROPPED = re.compile(r"^text_model\.embeddings\.(position_ids|token_type_ids)$")


def is_hf_clap_folder(path: str | Path) -> bool:
    config = Path(path) / "config.json"
    if not config.is_file():
        return False
    try:
        return json.loads(config.read_text()).get("model_type") == "clap"
    except (OSError, ValueError):
        return False


def weights_file(folder: Path) -> Path:
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    raise WeightsError(f"{folder}: a Hugging Face CLAP folder without {' or '.join(WEIGHT_FILES)}")


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise WeightsError(f"{path}: cannot read the {what} ({e.strerror or type(e).__name__})") from None
    except ValueError as e:
        raise WeightsError(f"{path}: the {what} is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise WeightsError(f"{path}: the {what} is not a JSON object")
    return data


def model_config(folder: str | Path) -> ModelConfig:
    """The clapkit config of a Hugging Face ClapModel folder, from its ``config.json`` and
    ``preprocessor_config.json`` (defaults filled in by transformers' own config classes)."""
    from transformers import ClapConfig

    folder = Path(folder)
    _read_json(folder / "config.json", "model config")  # a one-line error before transformers reads it
    config = ClapConfig.from_pretrained(folder)
    extractor = _read_json(folder / "preprocessor_config.json", "feature-extractor config")
    audio, text = config.audio_config, config.text_config
    _check_supported(folder, audio, text, config, extractor)
    data = {
        "name": folder.name,
        "description": f"Hugging Face ClapModel from {folder}",
        "embed_dim": config.projection_dim,
        "projection": "mlp",
        "text_logit_scale": True,
        "audio": {"arch": "htsat", "out_dim": audio.hidden_size, "fusion": bool(audio.enable_fusion),
                  "args": _htsat_args(audio), "frontend": _frontend(extractor)},
        "text": {"arch": "roberta", "out_dim": text.hidden_size, "tokenizer": str(folder.resolve()),
                 "pooling": "pooler", "max_length": 77, "args": _roberta_args(text)},
    }
    return parse_config(data, str(folder / "config.json"))


def _check_supported(folder: Path, audio, text, config, extractor: dict) -> None:
    problems = []
    if not (audio.enable_patch_layer_norm and audio.flatten_patch_embeds and audio.qkv_bias):
        problems.append("an audio patch embedding without LayerNorm/flattening or attention without qkv bias")
    if audio.enable_fusion and audio.fusion_type not in (None, "aff_2d"):
        problems.append(f"fusion_type {audio.fusion_type!r} (only aff_2d)")
    if "gelu" not in (audio.hidden_act, text.hidden_act) or audio.hidden_act != text.hidden_act:
        problems.append(f"activations {audio.hidden_act}/{text.hidden_act} (only gelu)")
    if (audio.projection_hidden_act, text.projection_hidden_act) != ("relu", "relu"):
        problems.append("projection activations other than relu")
    if audio.hidden_size != audio.patch_embeds_hidden_size * 2 ** (len(audio.depths) - 1):
        problems.append(f"audio hidden_size {audio.hidden_size} unlike the Swin's final width")
    if extractor.get("top_db") is not None:
        problems.append(f"a feature extractor with top_db={extractor['top_db']} (only None)")
    if extractor.get("padding", "repeatpad") not in ("repeatpad", "repeat", "pad"):
        problems.append(f"padding {extractor.get('padding')!r}")
    if extractor.get("truncation", "fusion") not in ("fusion", "rand_trunc"):
        problems.append(f"truncation {extractor.get('truncation')!r}")
    if problems:
        raise WeightsError(f"{folder}: unsupported ClapModel settings: {'; '.join(problems)}")


def _htsat_args(audio) -> dict:
    return {"embed_dim": audio.patch_embeds_hidden_size, "depths": list(audio.depths),
            "num_heads": list(audio.num_attention_heads), "window_size": audio.window_size,
            "spec_size": audio.spec_size, "patch_size": audio.patch_size, "patch_stride": list(audio.patch_stride),
            "mel_bins": audio.num_mel_bins, "freq_ratio": audio.spec_size // audio.num_mel_bins,
            "mlp_ratio": audio.mlp_ratio, "in_chans": audio.patch_embed_input_channels,
            "drop_rate": audio.hidden_dropout_prob, "attn_drop_rate": audio.attention_probs_dropout_prob,
            "drop_path_rate": audio.drop_path_rate, "fusion_ratio": audio.aff_block_r}


def _roberta_args(text) -> dict:
    return {"vocab_size": text.vocab_size, "hidden_size": text.hidden_size, "num_hidden_layers": text.num_hidden_layers,
            "num_attention_heads": text.num_attention_heads, "intermediate_size": text.intermediate_size,
            "max_position_embeddings": text.max_position_embeddings, "type_vocab_size": text.type_vocab_size,
            "layer_norm_eps": text.layer_norm_eps, "hidden_dropout_prob": text.hidden_dropout_prob,
            "attention_probs_dropout_prob": text.attention_probs_dropout_prob, "pad_token_id": text.pad_token_id,
            "add_pooler": True}


def _frontend(extractor: dict) -> dict:
    """ClapFeatureExtractor's settings (its defaults where the file omits one)."""
    fusion_bank = extractor.get("truncation", "fusion") == "fusion"
    padding = extractor.get("padding", "repeatpad")
    return {"sample_rate": extractor.get("sampling_rate", 48000), "clip_seconds": extractor.get("max_length_s", 10),
            "n_fft": extractor.get("fft_window_size", 1024), "hop_length": extractor.get("hop_length", 480),
            "n_mels": extractor.get("feature_size", 64), "fmin": extractor.get("frequency_min", 0),
            "fmax": extractor.get("frequency_max", 14000),
            "mel_scale": "htk" if fusion_bank else "slaney", "mel_norm": None if fusion_bank else "slaney",
            "short_clip": padding}  # _check_supported allows only the three modes clapkit has


def convert_hf_clap_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers' ClapModel keys renamed to clapkit's; query/key/value concatenated into qkv."""
    out, qkv = {}, {}
    for key, value in state_dict.items():
        if _DROPPED.search(key):
            continue
        key = key.replace("audio_model.audio_encoder.", "audio.encoder.").replace("text_model.", "text.encoder.")
        if key.startswith("audio.encoder."):
            key = key.replace("audio.encoder.batch_norm.", "audio.encoder.bn0.")
            match = _QKV.match(key)
            if match:
                qkv.setdefault((match.group(1), match.group(3)), {})[match.group(2)] = value
                continue
            for old, new in _AUDIO_RENAMES:
                if old in key:
                    key = key.replace(old, new)
                    break
        if key in ("logit_scale_a", "logit_scale_t"):
            key, value = ("logit_scale" if key == "logit_scale_a" else "logit_scale_text"), value.reshape(1)
        out[key] = value
    for (block, kind), parts in qkv.items():
        if set(parts) != {"query", "key", "value"}:
            raise WeightsError(f"{block}: attention {kind} lacks {', '.join(sorted({'query', 'key', 'value'} - set(parts)))}")
        out[f"{block}.attn.qkv.{kind}"] = torch.cat([parts["query"], parts["key"], parts["value"]])
    return out
