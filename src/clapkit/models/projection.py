"""Projection heads into the shared space: msclap's and LAION's (``ModelConfig.projection``)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Projection(nn.Module):
    """msclap's head: Linear -> GELU -> Linear -> Dropout, residual from the first Linear, LayerNorm."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.linear1 = nn.Linear(in_dim, out_dim, bias=False)
        self.linear2 = nn.Linear(out_dim, out_dim, bias=False)
        self.layer_norm = nn.LayerNorm(out_dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.linear1(x)
        return self.layer_norm(hidden + self.drop(self.linear2(F.gelu(hidden))))


class MlpProjection(nn.Module):
    """LAION's head: Linear -> ReLU -> Linear, with biases (Hugging Face ``ClapProjectionLayer`` names)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(in_dim, out_dim)
        self.linear2 = nn.Linear(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(F.relu(self.linear1(x)))


def build_projection(kind: str, in_dim: int, out_dim: int, dropout: float) -> nn.Module:
    if kind == "mlp":
        return MlpProjection(in_dim, out_dim)
    return Projection(in_dim, out_dim, dropout)
