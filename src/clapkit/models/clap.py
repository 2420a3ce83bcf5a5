"""The CLAP model: audio tower + text tower, each projected into one shared space, and a logit scale."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..audio.features import LogMel
from .projection import Projection


class AudioTower(nn.Module):
    """Waveform (B, T) at the model's rate -> (embedding (B, out_dim), clipwise (B, classes) or None)."""

    def __init__(self, frontend: LogMel, encoder: nn.Module) -> None:
        super().__init__()
        self.frontend = frontend
        self.encoder = encoder

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        # The mel front end always runs in float32 (log-power in bf16 loses whole dB); the encoder
        # runs in whatever dtype its weights have.
        features = self.frontend(waveform.float())
        return self.encoder(features.to(next(self.encoder.parameters()).dtype))


class TextTower(nn.Module):
    """Token ids -> one pooled vector per text.

    ``pooling``: ``"cls"`` (first token, BERT), ``"last"`` (last attended token) or ``"msclap"``:
    msclap's GPT-2 pools at ``count(ids != 0) - 1``, treating ``'!'`` (id 0) as padding even
    inside the text. Released msclap weights were trained with that rule, so it is kept for them.
    """

    def __init__(self, encoder: nn.Module, pooling: str) -> None:
        super().__init__()
        if pooling not in ("cls", "last", "msclap"):
            raise ValueError(f"unknown text pooling {pooling!r}")
        self.encoder = encoder
        self.pooling = pooling

    def pool_index(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.pooling == "cls":
            return torch.zeros(input_ids.shape[0], dtype=torch.long, device=input_ids.device)
        if self.pooling == "msclap":
            return input_ids.ne(0).sum(-1) - 1
        return attention_mask.sum(-1) - 1

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra)
        index = self.pool_index(input_ids, attention_mask)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), index]


class CLAP(nn.Module):
    """Contrastive language-audio model. ``text`` may be None (captioner's audio side)."""

    def __init__(self, audio: AudioTower, text: TextTower | None, audio_dim: int, text_dim: int,
                 embed_dim: int = 1024, projection_dropout: float = 0.5) -> None:
        super().__init__()
        self.audio = audio
        self.audio_projection = Projection(audio_dim, embed_dim, projection_dropout)
        self.text = text
        if text is not None:
            self.text_projection = Projection(text_dim, embed_dim, projection_dropout)
            self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def encode_audio(self, waveform: torch.Tensor) -> torch.Tensor:
        """(B, T) waveform -> (B, embed_dim) un-normalised projection."""
        embedding, _ = self.audio(waveform)
        return self.audio_projection(embedding)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra: torch.Tensor) -> torch.Tensor:
        """Token ids -> (B, embed_dim) un-normalised projection."""
        return self.text_projection(self.text(input_ids, attention_mask, **extra))

    def similarity(self, audio_embeddings: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
        """``exp(logit_scale) · cos`` between every audio and every text: (N_audio, N_text)."""
        a = nn.functional.normalize(audio_embeddings, dim=-1)
        t = nn.functional.normalize(text_embeddings, dim=-1)
        return self.logit_scale.exp() * a @ t.T
