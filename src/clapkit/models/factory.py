"""Model configs (JSON files in ``configs/``) and the one factory that builds every variant from them."""
from __future__ import annotations

import copy
import importlib
import json
from pathlib import Path

from torch import nn

from ..audio.features import LogMel
from .clap import CLAP, AudioTower, TextTower

CONFIG_DIR = Path(__file__).parent / "configs"

# arch name -> (module, class). Imported lazily so that e.g. the CNN14 code is not loaded for HTSAT.
ARCHITECTURES = {
    "htsat": ("clapkit.models.htsat", "HTSAT"),
    "cnn14": ("clapkit.models.cnn14", "Cnn14"),
    "gpt2": ("clapkit.models.gpt2", "GPT2"),
    "gpt2-lm": ("clapkit.models.gpt2", "GPT2LMHead"),
    "bert": ("clapkit.models.bert", "Bert"),
}


def list_configs() -> list[str]:
    """Names of the built-in model configs."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def get_config(name: str) -> dict:
    """A copy of a built-in model config by name."""
    path = CONFIG_DIR / f"{name}.json"
    if not path.is_file():
        raise KeyError(f"unknown model config {name!r}; known: {', '.join(list_configs())}")
    return json.loads(path.read_text())


def build_module(arch: str, args: dict) -> nn.Module:
    if arch not in ARCHITECTURES:
        raise KeyError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    module_name, class_name = ARCHITECTURES[arch]
    return getattr(importlib.import_module(module_name), class_name)(**args)


def create_model(config: dict | str) -> nn.Module:
    """Build an uninitialised-weights model (CLAP, or ClapCap when the config has ``caption``)."""
    config = get_config(config) if isinstance(config, str) else copy.deepcopy(config)
    audio_cfg, text_cfg = config["audio"], config.get("text")
    audio = AudioTower(LogMel(**audio_cfg["frontend"]), build_module(audio_cfg["arch"], audio_cfg["args"]))
    text = TextTower(build_module(text_cfg["arch"], text_cfg["args"]), text_cfg["pooling"]) if text_cfg else None
    clap = CLAP(audio, text, audio_cfg["out_dim"], text_cfg["out_dim"] if text_cfg else 0,
                config["embed_dim"], config.get("projection_dropout", 0.5))
    if config.get("caption"):
        from .clapcap import ClapCap

        cap = config["caption"]
        decoder = build_module("gpt2-lm", cap["decoder"]["args"])
        return ClapCap(clap, decoder, prefix_length=cap["prefix_length"], mapper_layers=cap["mapper_layers"],
                       normalize_prefix=cap["normalize_prefix"])
    return clap
