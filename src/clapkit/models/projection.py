"""msclap's projection head: Linear -> GELU -> Linear -> Dropout, residual from the first Linear, LayerNorm."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Projection(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.linear1 = nn.Linear(in_dim, out_dim, bias=False)
        self.linear2 = nn.Linear(out_dim, out_dim, bias=False)
        self.layer_norm = nn.LayerNorm(out_dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.linear1(x)
        return self.layer_norm(hidden + self.drop(self.linear2(F.gelu(hidden))))
