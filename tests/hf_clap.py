"""Hugging Face ClapModel folders with random weights, saved as transformers saves them, and the same
weights renamed the way LAION-CLAP's code saves its ``.pt`` checkpoints: the stand-ins for the real
releases, which cannot be downloaded here."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from shared_data import require

TINY_AUDIO = {"depths": [1, 1, 2, 1], "patch_embeds_hidden_size": 16, "hidden_size": 128, "window_size": 8}
TINY_TEXT = {"num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 4, "intermediate_size": 64}


def randomize(model: torch.nn.Module, seed: int = 0) -> None:
    """Every parameter and BatchNorm statistic drawn at random: transformers' own initialisation
    leaves biases, position tables and norms at constants that would hide a mis-mapped key."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.startswith("logit_scale"):
                parameter.fill_(2.0 if name.endswith("_a") else 2.5)
            elif parameter.ndim > 1:  # scaled so that activations neither vanish nor saturate
                fan_in = parameter[0].numel()
                parameter.copy_(torch.randn(parameter.shape, generator=generator) / fan_in ** 0.5)
            elif name.endswith("weight"):  # norms: around 1
                parameter.copy_(1 + 0.2 * torch.randn(parameter.shape, generator=generator))
            else:
                parameter.copy_(0.1 * torch.randn(parameter.shape, generator=generator))
        for name, buffer in model.named_buffers():
            if name.endswith("running_var"):
                buffer.copy_(torch.rand(buffer.shape, generator=generator) * 1.5 + 0.5)
            elif name.endswith("running_mean"):
                buffer.copy_(torch.randn(buffer.shape, generator=generator) * 0.5)


def save_hf_clap(folder: Path, *, fusion: bool = False, tiny: bool = False, safetensors: bool = True,
                 text_settings: dict | None = None, **extractor_settings) -> Path:
    """``ClapModel(ClapConfig(...))`` (full size unless ``tiny``), randomised, with a
    ``ClapFeatureExtractor`` and a RoBERTa-style tokenizer (GPT-2's BPE) beside it."""
    from transformers import AutoTokenizer, ClapConfig, ClapFeatureExtractor, ClapModel

    audio = dict(TINY_AUDIO if tiny else {}, enable_fusion=fusion)
    text = dict(TINY_TEXT if tiny else {}, **(text_settings or {}))
    config = ClapConfig(audio_config=audio, text_config=text, projection_dim=24 if tiny else 512)
    model = ClapModel(config).eval()
    randomize(model)
    model.save_pretrained(folder)
    if not safetensors:  # transformers 5 writes only safetensors; older releases hold pytorch_model.bin
        torch.save(model.state_dict(), folder / "pytorch_model.bin")
        (folder / "model.safetensors").unlink()
    settings = {"truncation": "fusion" if fusion else "rand_trunc", "frequency_min": 50, **extractor_settings}
    ClapFeatureExtractor(**settings).save_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(require("tokenizers/gpt2"), tokenizer_type="roberta")
    tokenizer.save_pretrained(folder)
    return folder


def laion_state_dict(hf_state: dict[str, torch.Tensor], derived_buffers: dict[str, torch.Tensor]) -> dict:
    """transformers' ClapModel keys renamed back to LAION-CLAP's (the inverse of transformers'
    ``convert_clap_original_pytorch_to_hf.py``), with what LAION's model also carries: its torchlibrosa
    front end, the AudioSet heads, the MLP-loss transforms, attention masks and DDP's ``module.``."""
    renames = [("text_model.", "text_branch."), ("audio_model.audio_encoder.", "audio_branch."),
               ("batch_norm.", "bn0."), (".layernorm_before.", ".norm1."), (".layernorm_after.", ".norm2."),
               (".attention.self.relative_position", ".attn.relative_position"),
               (".attention.output.dense.", ".attn.proj."), (".intermediate.dense.", ".mlp.fc1."),
               (".output.dense.", ".mlp.fc2."), ("_projection.linear1.", "_projection.0."),
               ("_projection.linear2.", "_projection.2.")]
    out, qkv = {}, {}
    for key, value in hf_state.items():
        match = re.match(r"^audio_model\.audio_encoder\.(.*)\.attention\.self\.(query|key|value)\.(weight|bias)$", key)
        if match:
            qkv.setdefault((match.group(1), match.group(3)), {})[match.group(2)] = value
            continue
        if key.startswith("text_model."):
            key = key.replace("text_model.", "text_branch.")
        else:
            for old, new in renames:
                key = key.replace(old, new, 1) if old in key else key
        out[key] = value
    for (block, kind), parts in qkv.items():
        out[f"audio_branch.{block}.attn.qkv.{kind}"] = torch.cat([parts["query"], parts["key"], parts["value"]])
    for name, buffer in derived_buffers.items():  # attention masks of the shifted blocks
        if name.endswith(".attn_mask") and buffer is not None:
            out[name.replace("audio.encoder.", "audio_branch.")] = buffer.clone()
    rng = np.random.default_rng(0)
    extras = {"audio_branch.spectrogram_extractor.stft.conv_real.weight": (513, 1, 1024),
              "audio_branch.logmel_extractor.melW": (513, 64), "audio_branch.tscam_conv.weight": (527, 768, 2, 3),
              "audio_branch.tscam_conv.bias": (527,), "audio_branch.head.weight": (527, 768),
              "audio_transform.sequential.0.weight": (512, 512), "text_transform.sequential.3.bias": (512,)}
    for name, shape in extras.items():
        out[name] = torch.from_numpy(rng.standard_normal(shape).astype(np.float32))
    return {"module." + key: value for key, value in out.items()}


def save_laion_pt(path: Path, hf_folder: Path, derived_buffers: dict[str, torch.Tensor]) -> Path:
    """The folder's weights as LAION's training script saves a checkpoint."""
    from safetensors.torch import load_file

    state = laion_state_dict(load_file(hf_folder / "model.safetensors"), derived_buffers)
    torch.save({"epoch": 45, "state_dict": state, "optimizer": {"state": {}, "param_groups": []}}, path)
    return path
