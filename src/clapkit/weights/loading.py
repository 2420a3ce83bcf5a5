"""Reading checkpoints (msclap .pth, LAION-CLAP .pt, Hugging Face ClapModel folders, clapkit
safetensors) into clapkit models, strictly. Each foreign format is mapped in its own file under
``formats/``.

Torch files are read with ``torch.load(weights_only=True)``: a file that would run code is refused.
A checkpoint must account for every parameter and persistent buffer of the model; buffers the
model derives from its config (mel bank, position indices, masks) may be present and must then
equal the derived ones; weights that are NaN or infinite are refused.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import re
from pathlib import Path

import torch
from torch import nn

from ..errors import WeightsError, name_list, one_line
from ..hub import hub_reachable, quiet_hub
from ..models.config import ModelConfig, get_config, parse_config
from ..models.factory import create_model
from .formats import hf_clap
from .formats.laion import (
    convert_laion_state_dict,
    detect_laion_variant,
    is_laion_state_dict,
)
from .formats.msclap import convert_msclap_state_dict, detect_msclap_variant
from .registry import (
    PRETRAINED,
    Pretrained,
    download_hint,
    local_candidates,
    shipped_path,
)

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")


def fetch(spec: Pretrained) -> Path:
    """A local path to a registered release (a file, or for a Hugging Face folder the folder): the
    copy inside this package for a shipped model, else the cache or ./weights, the Hub's cache, then
    the Hub. A pinned ``sha256`` is checked on download and on every shipped file."""
    if spec.shipped:
        path = shipped_path(spec)
        if not path.is_file():
            raise WeightsError(f"{spec.name}: {path} is missing from this installation; reinstall clapkit")
        check_sha256(path, spec)
        return path
    for path in local_candidates(spec):
        if (path / "config.json").is_file() if spec.is_folder else path.is_file():
            return path
    cached = hub_cached(spec)
    if cached is not None:
        return cached
    if not hub_reachable():
        raise WeightsError(f"{spec.name} weights not found locally and the Hugging Face Hub is unreachable; "
                           f"{download_hint(spec)}")
    import huggingface_hub

    try:
        with quiet_hub():
            if spec.is_folder:
                path = Path(huggingface_hub.snapshot_download(spec.hub_repo, allow_patterns=_folder_files(spec)))
                if not (path / spec.filename).is_file():  # older repos hold only the torch file
                    huggingface_hub.hf_hub_download(spec.hub_repo, "pytorch_model.bin")
                    return path
            else:
                path = Path(huggingface_hub.hf_hub_download(spec.hub_repo, spec.filename))
    except Exception as e:  # repo moved, file renamed, network dropped: all end the same way for the user
        raise WeightsError(f"{spec.name} weights could not be downloaded ({type(e).__name__}); "
                           f"{download_hint(spec)}") from None
    check_sha256(path / spec.filename if spec.is_folder else path, spec)
    return path


def _folder_files(spec: Pretrained) -> list[str]:
    return [spec.filename, "config.json", "preprocessor_config.json", *hf_clap.TOKENIZER_FILES]


def check_sha256(path: Path, spec: Pretrained) -> None:
    """Refuse a downloaded file whose sha256 differs from the registry's (when it pins one)."""
    if spec.sha256 is None:
        return
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != spec.sha256:
        raise WeightsError(f"{path}: sha256 {digest.hexdigest()} differs from {spec.name}'s {spec.sha256}; "
                           "the download is corrupt or the release changed")


def hub_cached(spec: Pretrained) -> Path | None:
    """The release's file (or folder) in the Hugging Face cache, if a download already put it there."""
    from huggingface_hub import try_to_load_from_cache

    with contextlib.suppress(Exception):
        found = try_to_load_from_cache(spec.hub_repo, spec.filename)
        if isinstance(found, str):
            found = Path(found)
            return found.parent if spec.is_folder else found
    return None


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file: ``.safetensors``, or a torch file (its ``['model']`` or
    ``['state_dict']`` when present; other entries such as an epoch or optimizer state are ignored)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such checkpoint file")
    if path.suffix != ".safetensors" and not _looks_like_torch_file(path):
        raise WeightsError(f"{path}: not a readable checkpoint (neither a PyTorch file nor safetensors)")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(path)
        obj = _torch_load(path)
    except Exception as e:
        raise WeightsError(f"{path}: {_unreadable_reason(e)}") from None
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path}: expected a state dict of tensors, found {type(obj).__name__}")
    return obj


def _torch_load(path: Path):
    """``torch.load(weights_only=True)``, memory-mapped for zip-format files: tensors are read from
    the page cache only when used, so the ones a model does not need cost no memory."""
    with path.open("rb") as f:
        zipped = f.read(4) == b"PK\x03\x04"
    return torch.load(path, map_location="cpu", weights_only=True, mmap=zipped)


def _looks_like_torch_file(path: Path) -> bool:
    """A zip archive (torch.save since 1.6) or a pickle (protocol 2+ starts with 0x80)."""
    with path.open("rb") as f:
        head = f.read(4)
    return head.startswith((b"PK\x03\x04", b"\x80"))


def _unreadable_reason(error: Exception) -> str:
    text = one_line(error, limit=100_000)
    blocked = re.search(r"(?:unsupported GLOBAL|Unsupported global: GLOBAL) (\S+)", text)
    if blocked:
        return (f"refused: loading it would run Python code ({blocked.group(1)}); clapkit reads torch files "
                "with weights_only=True, so only plain tensors load. Re-save the weights from a copy you trust")
    if isinstance(error, (KeyError, EOFError)) or re.search(r"invalid load key|zip archive|central directory", text):
        return "not a readable checkpoint (neither a PyTorch file nor safetensors, or truncated)"
    return f"not a readable checkpoint ({one_line(text, 200) or type(error).__name__})"


def load_state_dict_strict(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str, *,
                           assign: bool = False) -> None:
    """Load with every parameter and persistent buffer accounted for; name each key that is not.

    A tied parameter (e.g. GPT-2's lm_head = wte) may appear under either of its names; a derived
    (non-persistent) buffer may appear if it equals the model's own. ``assign`` puts the checkpoint's
    tensors in place instead of copying them (in the model's dtypes, ties kept): the way to fill a
    model built with ``create_model(..., empty=True)``, whose memory-mapped weights then cost no copy.
    """
    state_dict = _without_derived(model, fill_tied(model, state_dict), source)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong_shape = [f"{k} {tuple(state_dict[k].shape)} != {tuple(v.shape)}"
                   for k, v in expected.items() if k in state_dict and state_dict[k].shape != v.shape]
    problems = [f"{what} ({len(keys)}): {name_list(keys)}"
                for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape)) if keys]
    if problems:
        raise WeightsError(f"{source}: checkpoint does not fit the model — " + "; ".join(problems))
    non_finite = [k for k, v in state_dict.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if non_finite:
        raise WeightsError(f"{source}: NaN or infinite weights in {len(non_finite)} tensor(s): {name_list(non_finite)}")
    if not assign:
        model.load_state_dict(state_dict, strict=True)
        return
    ties = tied_groups(model)
    model.load_state_dict({k: _in_place(v, expected[k].dtype) for k, v in state_dict.items()}, strict=True, assign=True)
    for first, *others in ties:
        owner, _, attribute = first.rpartition(".")
        shared = getattr(model.get_submodule(owner), attribute)  # a parameter or a buffer
        for name in others:
            owner, _, attribute = name.rpartition(".")
            setattr(model.get_submodule(owner), attribute, shared)


def _in_place(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``tensor`` as a parameter is held: in ``dtype``, contiguous and 64-byte aligned as the allocator
    would place it. A slice of a fused tensor or a packed file is copied, as BLAS kernels may sum
    in another order at another alignment, and the same weights must give the same outputs."""
    tensor = tensor.to(dtype).contiguous()
    return tensor.clone() if tensor.data_ptr() % 64 else tensor


def tied_groups(model: nn.Module) -> list[list[str]]:
    """The names of each parameter or buffer ``model`` holds under more than one name."""
    names_by_tensor: dict[int, list[str]] = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        names_by_tensor.setdefault(id(tensor), []).append(name)
    return [names for names in names_by_tensor.values() if len(names) > 1]


def _without_derived(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Drop the derived buffers a checkpoint carries after checking they equal the model's."""
    persistent = model.state_dict()
    derived = {name: buffer for name, buffer in model.named_buffers() if name not in persistent and buffer is not None}
    for name in [k for k in state_dict if k in derived]:
        ours, theirs = derived[name], state_dict[name]
        same = ours.shape == theirs.shape and torch.allclose(theirs.to(ours.dtype), ours, rtol=1e-4, atol=1e-6)
        if not same:
            raise WeightsError(f"{source}: {name} differs from the one this model config derives; "
                               "the checkpoint was made for other front-end or architecture settings")
    return {k: v for k, v in state_dict.items() if k not in derived}


def untied(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state with each tied parameter (GPT-2's lm_head = wte) under its first name only, as
    safetensors stores it; :func:`fill_tied` restores the other names."""
    seen, kept = set(), {}
    for name, tensor in state_dict.items():
        alias = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if tensor.numel() == 0 or alias not in seen:
            kept[name] = tensor
        seen.add(alias)
    return kept


def write_safetensors(state_dict: dict[str, torch.Tensor], path: str | Path) -> None:
    """``state_dict`` as a safetensors file: contiguous, each tied parameter stored once (:func:`untied`)."""
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in untied(state_dict).items()}, str(path))


def fill_tied(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state with every name of ``model``'s tied parameters present (from whichever it has)."""
    filled = dict(state_dict)
    for names in tied_groups(model):
        present = [n for n in names if n in filled]
        for name in names:
            if present and name not in filled:
                filled[name] = filled[present[0]]
    return filled


# Entries a folder's config.json may hold beside the model config: a training run's options, an
# ONNX export's graphs and logit scale.
NOT_MODEL_CONFIG = ("training", "onnx")


def folder_config(config_path: Path) -> ModelConfig:
    """The model config in a clapkit folder's ``config.json``; a tokenizer it names by a relative
    path (a converted model's own ``tokenizer/``) is taken relative to that folder."""
    data = json.loads(config_path.read_text())
    for entry in NOT_MODEL_CONFIG:
        data.pop(entry, None)
    config = parse_config(data, str(config_path))
    folder = config_path.parent
    if config.text is not None and (folder / config.text.tokenizer).is_dir() and not Path(config.text.tokenizer).is_absolute():
        text = dataclasses.replace(config.text, tokenizer=str((folder / config.text.tokenizer).resolve()))
        config = dataclasses.replace(config, text=text)
    return config


def _config_beside(path: Path) -> ModelConfig | None:
    """The clapkit ``config.json`` beside a ``.safetensors`` file (see :func:`folder_config`)."""
    config_path = path.with_name("config.json") if path.suffix == ".safetensors" else None
    return folder_config(config_path) if config_path and config_path.is_file() else None


def read_checkpoint(path: str | Path, variant: str | None = None, *,
                    text_tower: bool = True) -> tuple[dict[str, torch.Tensor], ModelConfig, Path]:
    """A checkpoint in any supported format as ``(clapkit state dict, config, weights file)``.

    - a Hugging Face ClapModel folder (``config.json`` with ``model_type: clap``);
    - a clapkit folder, or its ``model.safetensors`` with ``config.json`` beside it;
    - an msclap ``.pth`` or a LAION-CLAP ``.pt``, recognised by their keys (``variant`` overrides).

    A slim clapkit checkpoint gets its text encoder from the declared init package, unless
    ``text_tower`` is False (an audio-only job drops the text side anyway).
    """
    path = Path(path)
    if path.is_dir() and hf_clap.is_hf_clap_folder(path):
        config = hf_clap.model_config(path)
        weights = hf_clap.weights_file(path)
        return hf_clap.convert_hf_clap_state_dict(read_state_dict(weights)), config, weights
    if path.is_dir():
        path = path / "model.safetensors"
    state_dict = read_state_dict(path)
    config = _config_beside(path)
    if config is not None:
        return (with_init_text(state_dict, config) if text_tower else state_dict), config, path
    if is_laion_state_dict(state_dict):
        config = get_config(variant or detect_laion_variant(state_dict))
        return convert_laion_state_dict(state_dict), config, path
    detected = detect_msclap_variant(state_dict)
    variant = variant or detected
    if variant is None:
        raise WeightsError(f"{path}: cannot tell which model this checkpoint is for; pass variant= "
                           f"(--variant), e.g. msclap-2023")
    if detected:
        state_dict = convert_msclap_state_dict(state_dict, variant)
    return state_dict, get_config(variant), path


TEXT_SIDE = ("text.", "text_projection.", "logit_scale", "logit_bias")
INIT_TEXT = "text.encoder."


def _init_text_encoder(config: ModelConfig) -> dict[str, torch.Tensor]:
    from .formats.hf_text import init_folder, load_text_encoder

    init = config.text.init
    return {INIT_TEXT + k: v for k, v in load_text_encoder(init_folder(init), config.text, init.sha256).items()}


def with_init_text(state_dict: dict[str, torch.Tensor], config: ModelConfig) -> dict[str, torch.Tensor]:
    """A slim checkpoint (see :func:`slim`) made whole again: the text encoder it leaves out is read
    from the config's declared init (an installed package, its sha256 checked)."""
    slimmed = config.text is not None and config.text.init is not None and not any(
        k.startswith(INIT_TEXT) for k in state_dict)
    return {**state_dict, **_init_text_encoder(config)} if slimmed else state_dict


def slim(state_dict: dict[str, torch.Tensor], config: ModelConfig) -> dict[str, torch.Tensor]:
    """The checkpoint without its text encoder, which must equal the config's declared init bit for
    bit (a locked text tower): what ships is only what training changed."""
    if config.text is None or config.text.init is None:
        raise WeightsError(f"{config.name}: the text tower declares no init to leave out")
    init = _init_text_encoder(config)
    changed = [k for k, v in init.items() if k not in state_dict or not torch.equal(state_dict[k], v)]
    if changed:
        raise WeightsError(f"{config.name}: the text encoder differs from its init {config.text.init.name} "
                           f"({len(changed)} tensors, e.g. {changed[0]}); it cannot be left out")
    return {k: v for k, v in state_dict.items() if not k.startswith(INIT_TEXT)}


def audio_only(state_dict: dict[str, torch.Tensor], config: ModelConfig) -> tuple[dict[str, torch.Tensor], ModelConfig]:
    """The checkpoint and config without the text tower, its projection and the logit scales, for
    jobs that embed only audio (a captioner is kept whole: its decoder is its task)."""
    if config.text is None:
        return state_dict, config
    return ({k: v for k, v in state_dict.items() if not k.startswith(TEXT_SIDE)},
            dataclasses.replace(config, text=None))


def load_checkpoint(path: str | Path, variant: str | None = None, *,
                    audio_only_model: bool = False) -> tuple[nn.Module, ModelConfig]:
    """Build the model a checkpoint describes (see :func:`read_checkpoint`) and load it strictly.
    ``audio_only_model`` builds and loads the audio side only. Returns ``(model, config)``."""
    state_dict, config, weights = read_checkpoint(path, variant, text_tower=not audio_only_model)
    if audio_only_model:
        state_dict, config = audio_only(state_dict, config)
    model = create_model(config, empty=True)
    load_state_dict_strict(model, state_dict, str(weights), assign=True)
    return model.eval(), config


def load_pretrained(name: str, *, audio_only_model: bool = False) -> tuple[nn.Module, ModelConfig, Pretrained]:
    """Load a registered release by name (see ``PRETRAINED``)."""
    if name not in PRETRAINED:
        looks_like_path = "/" in name or name.endswith(CHECKPOINT_SUFFIXES)
        if looks_like_path:
            raise WeightsError(f"{name}: no such checkpoint file or folder")
        raise WeightsError(f"unknown model {name!r}; known: {', '.join(PRETRAINED)} (or pass a checkpoint path)")
    spec = PRETRAINED[name]
    model, config = load_checkpoint(fetch(spec), spec.config, audio_only_model=audio_only_model)
    return model, config, spec


def save_pretrained(model: nn.Module, config: ModelConfig, directory: str | Path, *, slim_text: bool = False) -> Path:
    """Save in clapkit's format: ``model.safetensors`` + ``config.json``; ``slim_text`` leaves out a
    text encoder that equals its declared init (see :func:`slim`)."""
    from safetensors.torch import save_model

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if slim_text:
        write_safetensors(slim({k: v.detach() for k, v in model.state_dict().items()}, config),
                          directory / "model.safetensors")
    else:
        save_model(model, str(directory / "model.safetensors"))
    (directory / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    return directory
