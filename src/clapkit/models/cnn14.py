"""PANNs CNN14 as msclap 2022 uses it: log-mel (B, 1, T, n_mels) -> (2048-d embedding, AudioSet clipwise).

Module names follow msclap's ``Cnn14`` (``audio_encoder.base.*`` in the released checkpoint) so its
weights load by prefix. The STFT / log-mel front end lives in :class:`clapkit.audio.features.LogMel`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MIN_FRAMES = 32  # five 2x2 average poolings


class ConvBlock(nn.Module):
    """(conv3x3 -> BN -> ReLU) x 2, then average pooling."""

    def __init__(self, in_channels: int, out_channels: int, pool_size: tuple[int, int] = (2, 2)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.pool_size = pool_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, kernel_size=self.pool_size)


class Cnn14(nn.Module):
    """CNN14 audio encoder.

    ``forward`` takes the log-mel in dB *before* ``bn0`` (which normalises each mel bin) and returns
    ``(embedding (B, out_emb), clipwise (B, num_classes) or None)``: ``embedding`` is
    ``relu(fc1(pooled))``; with ``num_classes`` > 0 the AudioSet head is built and ``clipwise`` is
    ``sigmoid(fc_audioset(embedding))``. CLAP builds none (0).
    """

    def __init__(self, num_classes: int = 0, out_emb: int = 2048, n_mels: int = 64,
                 block_dropout: float = 0.2, head_dropout: float = 0.5) -> None:
        super().__init__()
        self.bn0 = nn.BatchNorm2d(n_mels)
        self.conv_block1 = ConvBlock(1, 64)
        self.conv_block2 = ConvBlock(64, 128)
        self.conv_block3 = ConvBlock(128, 256)
        self.conv_block4 = ConvBlock(256, 512)
        self.conv_block5 = ConvBlock(512, 1024)
        self.conv_block6 = ConvBlock(1024, 2048, pool_size=(1, 1))
        self.fc1 = nn.Linear(2048, out_emb)
        self.fc_audioset = nn.Linear(out_emb, num_classes) if num_classes else None
        self.block_dropout = nn.Dropout(block_dropout)
        self.head_dropout = nn.Dropout(head_dropout)
        # NHWC conv kernels and activations let oneDNN skip layout reorders between layers (~10% on
        # CPU). ``load_state_dict`` copies into these tensors in place, so the layout survives loading.
        self.to(memory_format=torch.channels_last)

    def _check_input(self, logmel: torch.Tensor) -> None:
        n_mels = self.bn0.num_features
        if logmel.ndim != 4 or logmel.shape[1] != 1 or logmel.shape[-1] != n_mels:
            raise ValueError(f"Cnn14 input must be a (B, 1, frames, {n_mels}) log-mel, "
                             f"got shape {tuple(logmel.shape)}")
        if logmel.shape[2] < MIN_FRAMES:
            raise ValueError(f"Cnn14 input has {logmel.shape[2]} frames; "
                             f"its five 2x poolings need at least {MIN_FRAMES}")

    def forward(self, logmel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, 1, T, n_mels) log-mel -> (embedding (B, out_emb), clipwise (B, num_classes) or None)."""
        self._check_input(logmel)
        x = self.bn0(logmel.transpose(1, 3)).transpose(1, 3)
        for block in (self.conv_block1, self.conv_block2, self.conv_block3,
                      self.conv_block4, self.conv_block5, self.conv_block6):
            x = self.block_dropout(block(x))
        x = x.mean(dim=3)  # over frequency
        x = x.amax(dim=2) + x.mean(dim=2)  # over time
        embedding = F.relu(self.fc1(self.head_dropout(x)))
        clipwise = None if self.fc_audioset is None else torch.sigmoid(self.fc_audioset(embedding))
        return self.head_dropout(embedding), clipwise
