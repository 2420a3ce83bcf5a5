"""An X-ARES encoder (github.com/jimbozhang/xares) for clapkit models: frame-level embeddings for audio
of up to 10 minutes, from :meth:`ClapPipeline.embed_frames` (the same frames as HEAR's timestamps).

    from clapkit.xares import ClapkitEncoder
    encoder = ClapkitEncoder("msclap-2023")     # sampling_rate, output_dim, hop_size_in_ms
    frames = encoder(audio)                     # (B, T) at sampling_rate -> (B, frames, output_dim)
"""
from __future__ import annotations

import torch
from torch import nn

from .weights.registry import DEFAULT_MODEL


class ClapkitEncoder(nn.Module):
    def __init__(self, model: str = DEFAULT_MODEL, *, hop_seconds: float = 0.5, frame_seconds: float = 1.0,
                 **load_options) -> None:
        super().__init__()
        from .pipeline import load

        self.pipeline = load(model, **load_options)
        self.model = self.pipeline.model
        self.sampling_rate: int = self.pipeline.sample_rate
        self.output_dim: int = self.pipeline.config.embed_dim
        self.hop_size_in_ms: float = hop_seconds * 1000
        self.hop_seconds, self.frame_seconds = hop_seconds, frame_seconds

    def forward(self, audio: torch.Tensor, audio_attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) or (T,) waveforms -> (B, frames, D); with a mask (B, T), only the unmasked samples
        of each row are embedded and the rows are zero-padded to the longest."""
        audio = audio.detach().float().cpu()
        if audio.ndim == 1:
            audio = audio[None]
        rows = [row if audio_attention_mask is None else row[audio_attention_mask[i].bool().cpu()]
                for i, row in enumerate(audio)]
        embeddings, _ = self.pipeline.embed_frames([r.numpy() for r in rows], sample_rate=self.sampling_rate,
                                                   hop_seconds=self.hop_seconds, frame_seconds=self.frame_seconds)
        frames = max(len(e) for e in embeddings)
        out = torch.zeros(len(embeddings), frames, self.output_dim)
        for i, e in enumerate(embeddings):
            out[i, :len(e)] = e
        return out.to(self.pipeline.device)
