"""The CLAP model: audio tower + text tower, each projected into one shared space, and a logit scale."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..audio.features import LogMel
from .projection import build_projection


def fusion_starts(frames: int, window_frames: int) -> tuple[int, int, int]:
    """Where LAION's fusion takes its three window-long crops of a longer mel: at the start, the
    middle and the end. LAION draws one at random from each third of the possible starts; fixed,
    evenly spaced starts make the embedding the same on every run."""
    last = frames - window_frames
    return 0, last // 2, last


def fusion_input(logmel: torch.Tensor, window_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 1, frames, mels) log-mel of clips of one length -> LAION's fusion input (B, 4, window_frames,
    mels) and ``is_longer`` (B,) bool. Up to ``window_frames`` frames: the mel four times, not longer.
    Longer: the whole mel shrunk to the window (bilinear), then the three crops of
    :func:`fusion_starts`."""
    batch, _, frames, mels = logmel.shape
    if frames <= window_frames:
        return logmel.expand(batch, 4, frames, mels), torch.zeros(batch, dtype=torch.bool, device=logmel.device)
    shrunk = F.interpolate(logmel, size=(window_frames, mels), mode="bilinear", align_corners=False)
    crops = [logmel[:, :, start:start + window_frames] for start in fusion_starts(frames, window_frames)]
    return torch.cat([shrunk, *crops], dim=1), torch.ones(batch, dtype=torch.bool, device=logmel.device)


class AudioTower(nn.Module):
    """Waveform (B, T) at the model's rate -> (embedding (B, out_dim), clipwise (B, classes) or None).

    With ``fusion_frames`` (LAION's fusion models, window of that many mel frames) the encoder gets
    :func:`fusion_input`: clips longer than the window are fused from the whole clip and three crops.
    """

    def __init__(self, frontend: LogMel, encoder: nn.Module, fusion_frames: int | None = None) -> None:
        super().__init__()
        self.frontend = frontend
        self.encoder = encoder
        self.fusion_frames = fusion_frames

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        # The front end computes in float32; the encoder gets its input in its own parameters'
        # dtype (under autocast those stay float32 and autocast picks each op's precision).
        features = self.frontend(waveform)
        dtype = next(self.encoder.parameters()).dtype
        if self.fusion_frames is None:
            return self.encoder(features.to(dtype))
        features, is_longer = fusion_input(features, self.fusion_frames)
        return self.encoder(features.to(dtype), is_longer)


class TextTower(nn.Module):
    """Token ids -> one pooled vector per text.

    ``pooling``: ``"cls"`` (first token, BERT), ``"pooler"`` (BERT's pooler on the first token, LAION's
    RoBERTa), ``"last"`` (last attended token), ``"mean"`` (mean of the attended tokens, as
    sentence-transformers) or ``"msclap"``: msclap's GPT-2 pools at
    ``count(ids != 0) - 1``, treating ``'!'`` (id 0) as padding even inside the text. Released
    msclap weights were trained with that rule, so it is kept for them.
    """

    def __init__(self, encoder: nn.Module, pooling: str) -> None:
        super().__init__()
        if pooling not in ("cls", "last", "mean", "msclap", "pooler"):
            raise ValueError(f"unknown text pooling {pooling!r}")
        if pooling == "pooler" and getattr(encoder, "pooler", None) is None:
            raise ValueError("pooling 'pooler' needs a text encoder built with its pooler (add_pooler)")
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
        if self.pooling == "mean":
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1)
        if self.pooling == "pooler":
            return self.encoder.pooler(hidden[:, 0])
        index = self.pool_index(input_ids, attention_mask)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), index]


class CLAP(nn.Module):
    """Contrastive language-audio model: two towers, each projected into one ``embed_dim`` space.

    ``forward`` is the training contract (as open_clip's CLIP): ``(B, samples)`` waveforms at the
    model's rate and tokenized texts -> ``{"audio_features", "text_features", "logit_scale"}``, the
    features un-normalised projections and ``logit_scale`` already exponentiated. ``text`` may be
    None (the captioner's audio side); then there is no text projection and no logit scale.
    With ``text_logit_scale`` (LAION) a second scale, ``logit_scale_text``, is returned for the
    text->audio direction; ``logit_scale`` then scales audio->text.
    """

    def __init__(self, audio: AudioTower, text: TextTower | None, audio_dim: int, text_dim: int,
                 embed_dim: int = 1024, projection_dropout: float = 0.5, init_logit_bias: float | None = None,
                 projection: str = "msclap", text_logit_scale: bool = False) -> None:
        super().__init__()
        self.audio = audio
        self.audio_projection = build_projection(projection, audio_dim, embed_dim, projection_dropout)
        self.text = text
        self.logit_bias = self.logit_scale_text = None
        if text is not None:
            self.text_projection = build_projection(projection, text_dim, embed_dim, projection_dropout)
            # Shape (1,), not 0-dim: FSDP2 cannot shard a scalar parameter.
            self.logit_scale = nn.Parameter(torch.full((1,), math.log(1 / 0.07)))
            if text_logit_scale:
                self.logit_scale_text = nn.Parameter(torch.full((1,), math.log(1 / 0.07)))
            if init_logit_bias is not None:  # the sigmoid (SigLIP) loss's learnt bias, as open_clip
                self.logit_bias = nn.Parameter(torch.full((1,), float(init_logit_bias)))

    def encode_audio(self, waveform: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """(B, T) waveform -> (B, embed_dim) projection, L2-normalised when ``normalize``."""
        embedding, _ = self.audio(waveform)
        features = self.audio_projection(embedding)
        return F.normalize(features, dim=-1) if normalize else features

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, normalize: bool = False,
                    **extra: torch.Tensor) -> torch.Tensor:
        """Token ids -> (B, embed_dim) projection, L2-normalised when ``normalize``."""
        if self.text is None:
            raise TypeError("this model has no text tower")
        features = self.text_projection(self.text(input_ids, attention_mask, **extra))
        return F.normalize(features, dim=-1) if normalize else features

    def forward(self, audio: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                **text_extra: torch.Tensor) -> dict[str, torch.Tensor]:
        """Both towers at once: un-normalised ``audio_features`` (B_a, D), ``text_features`` (B_t, D),
        ``logit_scale`` (exp of the learnt log-scale) and, when the model has them, ``logit_scale_text``
        and ``logit_bias``."""
        out = {"audio_features": self.encode_audio(audio),
               "text_features": self.encode_text(input_ids, attention_mask, **text_extra),
               "logit_scale": self.logit_scale.exp().squeeze(0)}
        if self.logit_scale_text is not None:
            out["logit_scale_text"] = self.logit_scale_text.exp().squeeze(0)
        if self.logit_bias is not None:
            out["logit_bias"] = self.logit_bias.squeeze(0)
        return out

    def similarity(self, audio_embeddings: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
        """``exp(logit_scale) · cos`` between every audio and every text: (N_audio, N_text)."""
        a = F.normalize(audio_embeddings, dim=-1)
        t = F.normalize(text_embeddings, dim=-1)
        return self.logit_scale.exp() * a @ t.T
