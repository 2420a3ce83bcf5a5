"""Pretrained weights: a registry of named releases, where to find them locally and on the Hub."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pretrained:
    name: str
    config: str            # built-in model config (src/clapkit/models/configs/<config>.json)
    hub_repo: str          # Hugging Face repo holding the file
    filename: str
    checkpoint_format: str  # "msclap" (.pth with ['model']) or "clapkit" (safetensors + config.json)
    tokenizer: str | None  # hub name of the tokenizer, None when the model has no text side of its own
    description: str


PRETRAINED: dict[str, Pretrained] = {
    p.name: p
    for p in [
        Pretrained("msclap-2023", "msclap-2023", "microsoft/msclap", "CLAP_weights_2023.pth", "msclap", "gpt2",
                   "Microsoft CLAP 2023 (HTSAT-22 + GPT-2), 1024-d, 44.1 kHz, 7 s"),
        Pretrained("msclap-2022", "msclap-2022", "microsoft/msclap", "CLAP_weights_2022.pth", "msclap", "bert-base-uncased",
                   "Microsoft CLAP 2022 (CNN14 + BERT), 1024-d, 44.1 kHz, 5 s"),
        Pretrained("msclap-clapcap", "msclap-clapcap", "microsoft/msclap", "clapcap_weights_2023.pth", "msclap", "gpt2",
                   "Microsoft clapcap 2023 audio captioner (HTSAT-22 + mapper + GPT-2)"),
    ]
}


def cache_dir() -> Path:
    """Where clapkit looks for and stores weights: ``$CLAPKIT_HOME`` or ``~/.cache/clapkit``."""
    return Path(os.environ.get("CLAPKIT_HOME", Path.home() / ".cache" / "clapkit"))


def local_candidates(spec: Pretrained) -> list[Path]:
    """Local places a released file may already be, in the order they are tried."""
    return [cache_dir() / spec.filename, Path("weights") / spec.filename]


def download_hint(spec: Pretrained) -> str:
    url = f"https://huggingface.co/{spec.hub_repo}/resolve/main/{spec.filename}"
    return f"download {url} and put it in {cache_dir()}/ (or pass its path)"
