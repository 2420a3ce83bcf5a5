"""The HEAR 2021 common API (hearbenchmark.com/hear-api.html) for clapkit models.

    import clapkit.hear as hear
    model = hear.load_model("")                       # the default model; or a checkpoint path / registry name
    scene = hear.get_scene_embeddings(audio, model)   # audio: (n, samples) at model.sample_rate -> (n, d)
    emb, ts = hear.get_timestamp_embeddings(audio, model)   # (n, frames, d), (n, frames) in milliseconds

Scene embeddings are the model's clip embeddings (windows averaged, as ``embed_audio``); timestamp
embeddings are :meth:`ClapPipeline.embed_frames` (1 s of audio centred every 250 ms, by default).
Both are deterministic and returned as float32 tensors on the model's device.
"""
from __future__ import annotations

import torch
from torch import nn

from .weights.registry import DEFAULT_MODEL

TIMESTAMP_HOP_SECONDS = 0.25
FRAME_SECONDS = 1.0


class HearModel(nn.Module):
    """A clapkit pipeline with the attributes HEAR asks for."""

    def __init__(self, pipeline) -> None:
        super().__init__()
        self.pipeline = pipeline
        self.model = pipeline.model  # registered, so .to() and .eval() reach it
        self.sample_rate: int = pipeline.sample_rate
        self.scene_embedding_size: int = pipeline.config.embed_dim
        self.timestamp_embedding_size: int = pipeline.config.embed_dim


def load_model(model_file_path: str = "", **load_options) -> HearModel:
    """A clapkit model by checkpoint path or registry name ("" for the default)."""
    from .pipeline import load

    return HearModel(load(model_file_path or DEFAULT_MODEL, **load_options))


def _check(audio: torch.Tensor, model: HearModel) -> torch.Tensor:
    from .errors import UsageError

    if not isinstance(audio, torch.Tensor) or audio.ndim != 2:
        raise UsageError(f"audio: HEAR expects a (n_sounds, n_samples) tensor, got {getattr(audio, 'shape', type(audio))}")
    return audio.detach().float().cpu()


def get_scene_embeddings(audio: torch.Tensor, model: HearModel) -> torch.Tensor:
    audio = _check(audio, model)
    if not len(audio):
        return torch.empty(0, model.scene_embedding_size, device=model.pipeline.device)
    return model.pipeline.embed_audio(audio.numpy(), sample_rate=model.sample_rate).to(model.pipeline.device)


def get_timestamp_embeddings(audio: torch.Tensor, model: HearModel) -> tuple[torch.Tensor, torch.Tensor]:
    audio = _check(audio, model)
    if not len(audio):
        empty = torch.empty(0, 0, model.timestamp_embedding_size)
        return empty, torch.empty(0, 0)
    embeddings, centres = model.pipeline.embed_frames(audio.numpy(), sample_rate=model.sample_rate,
                                                      hop_seconds=TIMESTAMP_HOP_SECONDS, frame_seconds=FRAME_SECONDS)
    device = model.pipeline.device
    return torch.stack(embeddings).to(device), (torch.stack(centres) * 1000).float().to(device)
