"""BERT encoder (msclap 2022's text tower) and, by configuration, RoBERTa (LAION-CLAP's), with
Hugging Face ``BertModel`` / ``RobertaModel`` parameter names.

Self-contained: the names match transformers so released weights (``caption_encoder.base.*``,
``text_branch.*``) load by prefix, but nothing here depends on transformers. RoBERTa is BERT with
position ids that skip padding (``pad_token_id``), one token type and BERT's pooler.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class BertEmbeddings(nn.Module):
    """Word + learned absolute position + token type embeddings, then LayerNorm."""

    def __init__(self, vocab_size: int, hidden_size: int, max_position_embeddings: int, type_vocab_size: int,
                 layer_norm_eps: float, dropout: float, pad_token_id: int | None = None) -> None:
        super().__init__()
        self.pad_token_id = pad_token_id
        self.word_embeddings = nn.Embedding(vocab_size, hidden_size)
        self.position_embeddings = nn.Embedding(max_position_embeddings, hidden_size)
        self.token_type_embeddings = nn.Embedding(type_vocab_size, hidden_size)
        self.LayerNorm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)

    def positions(self, input_ids: torch.Tensor) -> torch.Tensor:
        """BERT: 0, 1, 2, …; RoBERTa: pad_token_id + 1, + 2, … over the non-pad tokens, pad_token_id on pads."""
        if self.pad_token_id is None:
            return torch.arange(input_ids.shape[1], device=input_ids.device)
        real = input_ids.ne(self.pad_token_id).long()
        return real.cumsum(1) * real + self.pad_token_id

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        positions = self.positions(input_ids)
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        x = x + self.position_embeddings(positions)
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    def __init__(self, hidden_size: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not a multiple of num_attention_heads {num_heads}")
        self.num_heads = num_heads
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(hidden_size, hidden_size)
        self.value = nn.Linear(hidden_size, hidden_size)
        self.dropout_p = dropout

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, D) -> (B, heads, L, D / heads)."""
        return x.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)

    def forward(self, hidden: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        q, k, v = (self.split_heads(proj(hidden)) for proj in (self.query, self.key, self.value))
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=additive_mask,
                                                 dropout_p=self.dropout_p if self.training else 0.0)
        return context.transpose(1, 2).flatten(2)


class BertOutput(nn.Module):
    """Projection back to the hidden size, dropout, residual, post-LayerNorm: ends both the
    attention (``attention.output``) and the feed-forward (``output``) sub-layers."""

    def __init__(self, in_size: int, hidden_size: int, layer_norm_eps: float, dropout: float) -> None:
        super().__init__()
        self.dense = nn.Linear(in_size, hidden_size)
        self.LayerNorm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden)) + residual)


class BertAttention(nn.Module):
    def __init__(self, hidden_size: int, num_heads: int, layer_norm_eps: float, hidden_dropout: float,
                 attention_dropout: float) -> None:
        super().__init__()
        self.self = BertSelfAttention(hidden_size, num_heads, attention_dropout)
        self.output = BertOutput(hidden_size, hidden_size, layer_norm_eps, hidden_dropout)

    def forward(self, hidden: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(hidden, additive_mask), hidden)


class BertIntermediate(nn.Module):
    def __init__(self, hidden_size: int, intermediate_size: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_size, intermediate_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(hidden))  # exact (erf) GELU, as BERT's "gelu"


class BertLayer(nn.Module):
    def __init__(self, hidden_size: int, num_heads: int, intermediate_size: int, layer_norm_eps: float,
                 hidden_dropout: float, attention_dropout: float) -> None:
        super().__init__()
        self.attention = BertAttention(hidden_size, num_heads, layer_norm_eps, hidden_dropout, attention_dropout)
        self.intermediate = BertIntermediate(hidden_size, intermediate_size)
        self.output = BertOutput(intermediate_size, hidden_size, layer_norm_eps, hidden_dropout)

    def forward(self, hidden: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        attended = self.attention(hidden, additive_mask)
        return self.output(self.intermediate(attended), attended)


class BertEncoder(nn.Module):
    """A stack of ``num_layers`` BertLayers built from ``layer_args``."""

    def __init__(self, num_layers: int, **layer_args: Any) -> None:
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(**layer_args) for _ in range(num_layers))

    def forward(self, hidden: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        for layer in self.layer:
            hidden = layer(hidden, additive_mask)
        return hidden


class BertPooler(nn.Module):
    """BERT's pooled output: ``tanh(dense(h[:, 0]))``."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)

    def forward(self, first_token: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(first_token))


class Bert(nn.Module):
    """BERT (or RoBERTa) encoder: token ids -> last hidden state (B, L, hidden_size).

    ``add_pooler`` builds BERT's pooler for text towers that pool with it (LAION's RoBERTa). msclap
    pools ``h[:, 0]`` without it, so there it is not built: it would be a parameter with no gradient
    path (released checkpoints' ``pooler.*`` keys are dropped on load). ``pad_token_id`` switches to
    RoBERTa's position ids."""

    def __init__(self, vocab_size: int = 30522, hidden_size: int = 768, num_hidden_layers: int = 12,
                 num_attention_heads: int = 12, intermediate_size: int = 3072, max_position_embeddings: int = 512,
                 type_vocab_size: int = 2, layer_norm_eps: float = 1e-12, hidden_dropout_prob: float = 0.1,
                 attention_probs_dropout_prob: float = 0.1, pad_token_id: int | None = None,
                 add_pooler: bool = False) -> None:
        super().__init__()
        self.embeddings = BertEmbeddings(vocab_size, hidden_size, max_position_embeddings, type_vocab_size,
                                         layer_norm_eps, hidden_dropout_prob, pad_token_id)
        self.encoder = BertEncoder(num_hidden_layers, hidden_size=hidden_size, num_heads=num_attention_heads,
                                   intermediate_size=intermediate_size, layer_norm_eps=layer_norm_eps,
                                   hidden_dropout=hidden_dropout_prob, attention_dropout=attention_probs_dropout_prob)
        self.pooler = BertPooler(hidden_size) if add_pooler else None

    def _check_input(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                     token_type_ids: torch.Tensor) -> None:
        if input_ids.ndim != 2:
            raise ValueError(f"input_ids must be (batch, length), got shape {tuple(input_ids.shape)}")
        for name, tensor in (("attention_mask", attention_mask), ("token_type_ids", token_type_ids)):
            if tensor.shape != input_ids.shape:
                raise ValueError(f"{name} shape {tuple(tensor.shape)} differs from input_ids {tuple(input_ids.shape)}")
        max_length = self.embeddings.position_embeddings.num_embeddings
        if self.embeddings.pad_token_id is not None:
            max_length -= self.embeddings.pad_token_id + 1  # RoBERTa's positions start after the pad id
        if input_ids.shape[1] > max_length:
            raise ValueError(f"input_ids has {input_ids.shape[1]} tokens; this encoder takes at most {max_length}")

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) ids, 1/0 attention mask (and optional segment ids) -> (B, L, hidden_size)."""
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        self._check_input(input_ids, attention_mask, token_type_ids)
        hidden = self.embeddings(input_ids, token_type_ids)
        # Padded keys get the dtype's most negative value, as in transformers, so their softmax weight is 0.
        additive_mask = (1.0 - attention_mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
        return self.encoder(hidden, additive_mask)
