"""Reading checkpoints (msclap .pth, clapkit safetensors) into clapkit models, strictly."""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

import torch
from torch import nn

from ..hub import hub_reachable, quiet_hub
from ..models.factory import create_model, get_config
from .msclap import convert_msclap_state_dict, detect_msclap_variant
from .registry import PRETRAINED, Pretrained, download_hint, local_candidates


class WeightsError(RuntimeError):
    """Weights that cannot be found or do not fit the model; the message says which and why."""


def fetch(spec: Pretrained) -> Path:
    """A local path to a registered release: the cache or ./weights, the Hub's cache, then the Hub."""
    for path in local_candidates(spec):
        if path.is_file():
            return path
    from huggingface_hub import hf_hub_download

    with contextlib.suppress(Exception):
        return Path(hf_hub_download(spec.hub_repo, spec.filename, local_files_only=True))
    if not hub_reachable():
        raise WeightsError(f"{spec.name} weights not found locally and the Hugging Face Hub is unreachable; "
                           f"{download_hint(spec)}")
    try:
        with quiet_hub():
            return Path(hf_hub_download(spec.hub_repo, spec.filename))
    except Exception as e:  # repo moved, file renamed, network dropped: all end the same way for the user
        raise WeightsError(f"{spec.name} weights could not be downloaded ({type(e).__name__}); "
                           f"{download_hint(spec)}") from None


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file: ``.safetensors``, or a torch file (``['model']`` when present)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such checkpoint file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(path)
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise WeightsError(f"{path}: not a readable checkpoint ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path}: expected a state dict of tensors")
    return obj


def load_state_dict_strict(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Load with every parameter and persistent buffer accounted for; name each key that is not.
    A tied parameter (e.g. GPT-2's lm_head = wte) may appear under either of its names."""
    expected = model.state_dict()
    state_dict = _fill_tied(model, state_dict)
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong_shape = [f"{k} {tuple(state_dict[k].shape)} != {tuple(v.shape)}"
                   for k, v in expected.items() if k in state_dict and state_dict[k].shape != v.shape]
    problems = [f"missing: {', '.join(missing)}" if missing else "",
                f"unexpected: {', '.join(unexpected)}" if unexpected else "",
                f"wrong shape: {', '.join(wrong_shape)}" if wrong_shape else ""]
    if any(problems):
        raise WeightsError(f"{source}: checkpoint does not fit the model — " + "; ".join(p for p in problems if p))
    model.load_state_dict(state_dict, strict=True)


def _fill_tied(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    names_by_tensor: dict[int, list[str]] = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        names_by_tensor.setdefault(id(tensor), []).append(name)
    filled = dict(state_dict)
    for names in names_by_tensor.values():
        present = [n for n in names if n in filled]
        for name in names:
            if present and name not in filled:
                filled[name] = filled[present[0]]
    return filled


def _config_beside(path: Path) -> dict | None:
    config_path = path.with_name("config.json") if path.suffix == ".safetensors" else None
    if config_path and config_path.is_file():
        return json.loads(config_path.read_text())
    return None


def load_checkpoint(path: str | Path, variant: str | None = None) -> tuple[nn.Module, dict]:
    """Build the model a checkpoint file describes and load it. Returns ``(model, config)``.

    msclap ``.pth`` files are recognised by their keys (``variant`` overrides); clapkit files are
    ``model.safetensors`` with a ``config.json`` beside them.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    state_dict = read_state_dict(path)
    config = _config_beside(path)
    if config is None:
        variant = variant or detect_msclap_variant(state_dict)
        if variant is None:
            raise WeightsError(f"{path}: cannot tell which model this checkpoint is for; pass variant=")
        config = get_config(variant)
        if detect_msclap_variant(state_dict):
            state_dict = convert_msclap_state_dict(state_dict, variant)
    model = create_model(config)
    load_state_dict_strict(model, state_dict, str(path))
    return model.eval(), config


def load_pretrained(name: str) -> tuple[nn.Module, dict, Pretrained]:
    """Load a registered release by name (see ``PRETRAINED``)."""
    if name not in PRETRAINED:
        raise WeightsError(f"unknown model {name!r}; known: {', '.join(PRETRAINED)} (or pass a checkpoint path)")
    spec = PRETRAINED[name]
    model, config = load_checkpoint(fetch(spec), spec.config)
    return model, config, spec


def save_pretrained(model: nn.Module, config: dict, directory: str | Path) -> Path:
    """Save in clapkit's format: ``model.safetensors`` + ``config.json``."""
    from safetensors.torch import save_model

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_model(model, str(directory / "model.safetensors"))
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return directory
