"""The one factory that builds every model variant from its config (``configs/*.json``)."""
from __future__ import annotations

import contextlib
import importlib
import inspect
from collections.abc import Iterator
from pathlib import Path

from torch import nn

from ..audio.features import LogMel
from ..errors import ConfigError
from .clap import CLAP, AudioTower, TextTower
from .config import FrontendConfig, ModelConfig, get_config, list_configs

__all__ = ["ARCHITECTURES", "create_model", "get_config", "list_configs", "build_frontend"]

# arch name -> (module, class). Imported lazily so that e.g. the CNN14 code is not loaded for HTSAT.
ARCHITECTURES = {
    "htsat": ("clapkit.models.htsat", "HTSAT"),
    "cnn14": ("clapkit.models.cnn14", "Cnn14"),
    "gpt2": ("clapkit.models.gpt2", "GPT2"),
    "gpt2-lm": ("clapkit.models.gpt2", "GPT2LMHead"),
    "bert": ("clapkit.models.bert", "Bert"),
    "roberta": ("clapkit.models.bert", "Bert"),  # RoBERTa is BERT configured (pad_token_id, add_pooler)
}


def build_module(arch: str, args: dict, where: str) -> nn.Module:
    """An architecture's module from its constructor ``args``; unknown arguments are refused by name."""
    if arch not in ARCHITECTURES:
        raise ConfigError(f"{where}.arch: unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    module_name, class_name = ARCHITECTURES[arch]
    cls = getattr(importlib.import_module(module_name), class_name)
    accepted = [p for p in inspect.signature(cls).parameters if p != "self"]
    unknown = [k for k in args if k not in accepted]
    if unknown:
        raise ConfigError(f"{where}.args: unknown argument {unknown[0]!r} for {arch} (accepted: {', '.join(accepted)})")
    return cls(**args)


def build_frontend(frontend: FrontendConfig) -> LogMel:
    return LogMel(n_fft=frontend.n_fft, hop_length=frontend.hop_length, n_mels=frontend.n_mels,
                  mel_sample_rate=frontend.mel_sample_rate or frontend.sample_rate,
                  fmin=frontend.fmin, fmax=frontend.fmax, mel_scale=frontend.mel_scale, mel_norm=frontend.mel_norm)


@contextlib.contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Modules built inside hold their parameters on the meta device: no memory, no random init, to
    be replaced by ``load_state_dict(assign=True)``. Buffers (mel filters, position indices) are
    computed as usual. Each parameter exists on the CPU only while its module is being built."""
    register = nn.Module.register_parameter

    def register_on_meta(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        if param is not None and not param.is_meta:  # a meta one is already placed (or tied)
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register(module, name, param)

    def skip(tensor, *args, **kwargs):
        return tensor

    # Random init of meta tensors would only waste time, and some initialisers (trunc_normal_) reach
    # meta kernels through torch._dynamo, a heavy import that breaks where a module is stubbed.
    initialisers = {name: getattr(nn.init, name) for name in dir(nn.init) if name.endswith("_") and not name.startswith("_")}
    nn.Module.register_parameter = register_on_meta
    for name in initialisers:
        setattr(nn.init, name, skip)
    try:
        yield
    finally:
        nn.Module.register_parameter = register
        for name, function in initialisers.items():
            setattr(nn.init, name, function)


def create_model(config: ModelConfig | str | Path, *, empty: bool = False) -> nn.Module:
    """Build a freshly initialised model (CLAP, or ClapCap when the config has ``caption``).
    ``empty`` leaves its parameters on the meta device (see :func:`parameters_on_meta`), for a
    loader that assigns a checkpoint's tensors in place."""
    if not isinstance(config, ModelConfig):
        config = get_config(config)
    if empty:
        with parameters_on_meta():
            return create_model(config)
    frontend = build_frontend(config.audio.frontend)
    encoder_args = dict(config.audio.args, enable_fusion=True) if config.audio.fusion else config.audio.args
    fusion_frames = frontend.num_frames(config.clip_samples) if config.audio.fusion else None
    audio = AudioTower(frontend, build_module(config.audio.arch, encoder_args, "audio"), fusion_frames)
    text = None
    if config.text is not None:
        text = TextTower(build_module(config.text.arch, config.text.args, "text"), config.text.pooling)
    clap = CLAP(audio, text, config.audio.out_dim, config.text.out_dim if text else 0,
                config.embed_dim, config.projection_dropout, config.init_logit_bias,
                config.projection, config.text_logit_scale)
    if config.caption is None:
        return clap
    from .clapcap import ClapCap

    cap = config.caption
    decoder = build_module(cap.decoder.arch, cap.decoder.args, "caption.decoder")
    return ClapCap(clap, decoder, prefix_length=cap.prefix_length, mapper_layers=cap.mapper_layers,
                   normalize_prefix=cap.normalize_prefix)
