"""Pretrained weights: a registry of named releases, where to find them locally and on the Hub."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pretrained:
    """A released model. ``checkpoint_format``: ``msclap`` (.pth with ['model']), ``laion`` (.pt with
    ['state_dict']), ``hf-clap`` (a Hugging Face ClapModel folder: ``filename`` is its weights file,
    fetched with the config, feature-extractor and tokenizer files beside it) or ``clapkit``
    (safetensors + config.json). ``sha256``: of ``filename``, checked after download; None where it
    could not be pinned (the Hub was unreachable when the entry was written). ``shipped``: the file
    is inside this package (``weights/files/``), so the model works offline from a fresh install."""

    name: str
    config: str | None     # built-in model config; None when the checkpoint folder holds its own
    hub_repo: str          # Hugging Face repo holding the file
    filename: str
    checkpoint_format: str
    tokenizer: str | None  # hub name of the tokenizer, None when the model has no text side of its own
    description: str
    licence: str = ""
    source: str = ""       # where the weights come from (paper, project)
    sha256: str | None = None
    shipped: bool = False

    @property
    def is_folder(self) -> bool:
        return self.checkpoint_format == "hf-clap"


DEFAULT_MODEL = "clapkit-small"  # ships inside the package: what every command uses without --model

_MSCLAP = ("MIT (microsoft/CLAP)", "Elizalde et al., arXiv 2206.04769 and 2309.05767; github.com/microsoft/CLAP")
_LAION = ("CC0-1.0 (LAION-AI/CLAP)", "Wu, Chen et al., LAION-CLAP, arXiv 2211.06687; github.com/LAION-AI/CLAP")
_LAION_HF = ("Apache-2.0 (model card)", "LAION-CLAP converted to transformers' ClapModel (arXiv 2211.06687)")


PRETRAINED: dict[str, Pretrained] = {
    p.name: p
    for p in [
        Pretrained("clapkit-small", None, "", "clapkit-small/model.safetensors", "clapkit", None,
                   "clapkit-small: HTSAT-32 (3.1M) + all-MiniLM-L6-v2 (locked), 512-d, 32 kHz, 2.55 s windows; trained by "
                   "clapkit on its offline corpus v2, shipped in the package",
                   "GPL-3.0-or-later (weights; the MiniLM text tower is Apache-2.0, from its own package)",
                   "clapkit, docs/models/clapkit-small.md",
                   sha256="9a8cc00447421c5c7aac7d77b1033fd8e838ad6de4dd20c79cfac1ac533490b0", shipped=True),
        Pretrained("msclap-2023", "msclap-2023", "microsoft/msclap", "CLAP_weights_2023.pth", "msclap", "gpt2",
                   "Microsoft CLAP 2023 (HTSAT-22 + GPT-2), 1024-d, 44.1 kHz, 7 s", *_MSCLAP),
        Pretrained("msclap-2022", "msclap-2022", "microsoft/msclap", "CLAP_weights_2022.pth", "msclap", "bert-base-uncased",
                   "Microsoft CLAP 2022 (CNN14 + BERT), 1024-d, 44.1 kHz, 5 s", *_MSCLAP),
        Pretrained("msclap-clapcap", "msclap-clapcap", "microsoft/msclap", "clapcap_weights_2023.pth", "msclap", "gpt2",
                   "Microsoft clapcap 2023 audio captioner (HTSAT-22 + mapper + GPT-2)", *_MSCLAP),
        # LAION-CLAP's own checkpoints (laion_clap .pt)
        Pretrained("laion-630k", "laion-htsat-tiny", "lukewys/laion_clap", "630k-best.pt", "laion", "roberta-base",
                   "LAION-CLAP HTSAT-tiny + RoBERTa, LAION-Audio-630K, 512-d, 48 kHz, 10 s", *_LAION),
        Pretrained("laion-630k-audioset", "laion-htsat-tiny", "lukewys/laion_clap", "630k-audioset-best.pt", "laion",
                   "roberta-base", "LAION-CLAP HTSAT-tiny + RoBERTa, 630K + AudioSet", *_LAION),
        Pretrained("laion-630k-fusion", "laion-htsat-tiny-fusion", "lukewys/laion_clap", "630k-fusion-best.pt", "laion",
                   "roberta-base", "LAION-CLAP HTSAT-tiny with feature fusion (any length), 630K", *_LAION),
        Pretrained("laion-630k-audioset-fusion", "laion-htsat-tiny-fusion", "lukewys/laion_clap",
                   "630k-audioset-fusion-best.pt", "laion", "roberta-base",
                   "LAION-CLAP HTSAT-tiny with feature fusion, 630K + AudioSet", *_LAION),
        Pretrained("laion-music", "laion-htsat-base", "lukewys/laion_clap", "music_audioset_epoch_15_esc_90.14.pt",
                   "laion", "roberta-base", "LAION-CLAP HTSAT-base + RoBERTa, music + AudioSet", *_LAION),
        Pretrained("laion-music-speech", "laion-htsat-base", "lukewys/laion_clap", "music_speech_epoch_15_esc_89.25.pt",
                   "laion", "roberta-base", "LAION-CLAP HTSAT-base + RoBERTa, music + speech", *_LAION),
        Pretrained("laion-music-speech-audioset", "laion-htsat-base", "lukewys/laion_clap",
                   "music_speech_audioset_epoch_15_esc_89.98.pt", "laion", "roberta-base",
                   "LAION-CLAP HTSAT-base + RoBERTa, music + speech + AudioSet", *_LAION),
        # The same family as Hugging Face ClapModel folders
        Pretrained("laion/clap-htsat-unfused", None, "laion/clap-htsat-unfused", "model.safetensors", "hf-clap", None,
                   "Hugging Face ClapModel, HTSAT-tiny + RoBERTa, unfused", *_LAION_HF),
        Pretrained("laion/clap-htsat-fused", None, "laion/clap-htsat-fused", "model.safetensors", "hf-clap", None,
                   "Hugging Face ClapModel, HTSAT-tiny + RoBERTa, feature fusion", *_LAION_HF),
        Pretrained("laion/larger_clap_general", None, "laion/larger_clap_general", "model.safetensors", "hf-clap", None,
                   "Hugging Face ClapModel, HTSAT-base + RoBERTa, general audio", *_LAION_HF),
        Pretrained("laion/larger_clap_music", None, "laion/larger_clap_music", "model.safetensors", "hf-clap", None,
                   "Hugging Face ClapModel, HTSAT-base + RoBERTa, music", *_LAION_HF),
        Pretrained("laion/larger_clap_music_and_speech", None, "laion/larger_clap_music_and_speech", "model.safetensors",
                   "hf-clap", None, "Hugging Face ClapModel, HTSAT-base + RoBERTa, music and speech", *_LAION_HF),
    ]
}


def shipped_path(spec: Pretrained) -> Path:
    """Where a shipped release's weights file lies inside the installed package."""
    return Path(__file__).parent / "files" / spec.filename


def cache_dir() -> Path:
    """Where clapkit looks for and stores weights: ``$CLAPKIT_HOME`` or ``~/.cache/clapkit``."""
    return Path(os.environ.get("CLAPKIT_HOME", Path.home() / ".cache" / "clapkit"))


def local_name(spec: Pretrained) -> str:
    """The file name, or for a Hub folder the folder name (``laion/clap-htsat-fused`` -> ``clap-htsat-fused``)."""
    return spec.hub_repo.split("/")[-1] if spec.is_folder else spec.filename


def local_candidates(spec: Pretrained) -> list[Path]:
    """Local places a released file (or folder) may already be, in the order they are tried."""
    return [cache_dir() / local_name(spec), Path("weights") / local_name(spec)]


def download_hint(spec: Pretrained) -> str:
    if spec.is_folder:
        return (f"download the Hugging Face folder https://huggingface.co/{spec.hub_repo} (config.json, "
                f"preprocessor_config.json, tokenizer files, {spec.filename}) into {cache_dir() / local_name(spec)}/ "
                "(or pass its path)")
    url = f"https://huggingface.co/{spec.hub_repo}/resolve/main/{spec.filename}"
    return f"download {url} and put it in {cache_dir()}/ (or pass its path)"
