"""Model configs as data: the JSON files in ``configs/`` parse into these dataclasses, strictly.

A config says everything needed to build a model (``clapkit.models.factory.create_model``) and to
feed it (sample rate, clip length, tokenizer). ``args`` are the architecture's constructor
arguments, checked against its signature when the model is built.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..config import parse, read_config_file
from ..errors import ConfigError, name_list

CONFIG_DIR = Path(__file__).parent / "configs"


@dataclass(frozen=True)
class FrontendConfig:
    """Waveform -> log-mel. ``mel_sample_rate``: the rate the mel bank was designed for (msclap's
    HTSAT applies a 32 kHz bank to 44.1 kHz audio); the audio's own rate when omitted.
    ``mel_scale`` / ``mel_norm``: librosa's Slaney bank (msclap, LAION unfused) or torchaudio's HTK
    bank without norm (LAION fusion). ``short_clip``: how a clip shorter than ``clip_seconds`` is
    filled: ``repeat`` tiles it and cuts (msclap), ``repeatpad`` tiles it whole as often as it fits
    and pads the rest with silence (LAION), ``pad`` only pads."""

    sample_rate: int
    clip_seconds: float
    n_fft: int = 1024
    hop_length: int = 320
    n_mels: int = 64
    fmin: float = 50.0
    fmax: float = 14000.0
    mel_sample_rate: int | None = None
    mel_scale: Literal["slaney", "htk"] = "slaney"
    mel_norm: Literal["slaney"] | None = "slaney"
    short_clip: Literal["repeat", "repeatpad", "pad"] = "repeat"


@dataclass(frozen=True)
class AudioConfig:
    """``fusion``: LAION's feature fusion for clips longer than ``clip_seconds`` (the encoder is built
    with ``enable_fusion``): the whole clip's mel, shrunk to the window, plus three window-long crops
    at the start, middle and end."""

    arch: str
    out_dim: int
    frontend: FrontendConfig
    args: dict[str, Any] = field(default_factory=dict)
    fusion: bool = False


@dataclass(frozen=True)
class TextInit:
    """A pretrained text encoder: a local Hugging Face folder, or an installed Python package that
    holds one (``package`` + ``folder`` inside it), checked against ``sha256``."""

    name: str
    licence: str
    sha256: str | None = None
    package: str | None = None
    folder: str = "."


@dataclass(frozen=True)
class TextConfig:
    """``pooling``: ``cls`` (BERT), ``last`` (last attended token), ``mean`` (sentence-transformers)
    or ``msclap`` (msclap's GPT-2 rule). ``max_length``: the tokenizer's ``padding="max_length"``
    target. ``init``: the pretrained text encoder a fresh model starts from (see
    ``clapkit.weights.formats.hf_text``), with its expected sha256."""

    arch: str
    out_dim: int
    tokenizer: str
    pooling: Literal["cls", "last", "mean", "msclap", "pooler"]
    max_length: int | None = None
    args: dict[str, Any] = field(default_factory=dict)
    init: TextInit | None = None


@dataclass(frozen=True)
class DecoderConfig:
    """``tokenizer_style``: ``gpt2`` (BPE, ends with ``<|endoftext|>``) or ``bert`` (WordPiece, ends
    with ``[SEP]``); ``tokenizer_init``: an installed package holding the tokenizer's files, so that
    it loads offline."""

    arch: str
    tokenizer: str
    args: dict[str, Any] = field(default_factory=dict)
    tokenizer_style: Literal["gpt2", "bert"] = "gpt2"
    tokenizer_init: TextInit | None = None


@dataclass(frozen=True)
class CaptionConfig:
    """A prefix captioner: audio embedding -> mapper -> ``prefix_length`` embeddings -> decoder."""

    decoder: DecoderConfig
    prefix_length: int
    mapper_layers: int = 8
    normalize_prefix: bool = True
    beam_size: int = 5
    max_length: int = 67
    stop: Literal["msclap", "eos"] = "eos"


@dataclass(frozen=True)
class ModelConfig:
    """A whole model: audio tower, optional text tower, projections into ``embed_dim``, optional captioner.

    ``projection``: msclap's (Linear, GELU, Linear, residual, LayerNorm) or LAION's ``mlp`` (Linear,
    ReLU, Linear). ``text_logit_scale``: a second learnt scale for the text->audio logits, as LAION's
    ``logit_scale_t`` (``logit_scale`` then scales audio->text)."""

    name: str
    audio: AudioConfig
    embed_dim: int
    text: TextConfig | None = None
    caption: CaptionConfig | None = None
    description: str = ""
    projection_dropout: float = 0.5
    projection: Literal["msclap", "mlp"] = "msclap"
    init_logit_bias: float | None = None  # builds the learnt bias of the sigmoid loss (-10 as SigLIP)
    text_logit_scale: bool = False  # LAION's second scale, for the text->audio direction

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def clip_samples(self) -> int:
        return int(round(self.audio.frontend.clip_seconds * self.audio.frontend.sample_rate))


def parse_config(data: dict, source: str) -> ModelConfig:
    """A :class:`ModelConfig` from a dict (e.g. a ``config.json``), refusing unknown or mistyped keys."""
    return parse(ModelConfig, data, source)


def list_configs() -> list[str]:
    """Names of the built-in model configs."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def get_config(name_or_path: str | Path) -> ModelConfig:
    """A built-in model config by name, or a config file (JSON/YAML) by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = CONFIG_DIR / f"{name_or_path}.json"
        if not path.is_file():
            raise ConfigError(f"unknown model config {str(name_or_path)!r}; known: {name_list(list_configs(), 20)}")
    return parse_config(read_config_file(path), str(path))
