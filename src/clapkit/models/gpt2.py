"""GPT-2 (Radford et al., 2019), written out in the style of nanoGPT.

Parameter names and layouts follow Hugging Face's ``GPT2Model`` / ``GPT2LMHeadModel`` so that
their checkpoints (and msclap's, which embed them) load unchanged: the projections are
:class:`Conv1D` with weights stored ``(in_features, out_features)``.

A key/value cache is a tuple with one ``(key, value)`` pair per block, each ``(B, n_head, L_past, head_dim)``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

KeyValue = tuple[torch.Tensor, torch.Tensor]
KeyValueCache = tuple[KeyValue, ...]


class Conv1D(nn.Module):
    """A linear layer whose weight is stored transposed, ``(in_features, out_features)``, as in GPT-2 checkpoints."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_features, out_features).normal_(std=0.02))
        self.bias = nn.Parameter(torch.zeros(out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).view(*x.shape[:-1], -1)


class Attention(nn.Module):
    def __init__(self, n_embd: int, n_head: int) -> None:
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd ({n_embd}) must be divisible by n_head ({n_head})")
        self.n_head = n_head
        self.c_attn = Conv1D(n_embd, 3 * n_embd)
        self.c_proj = Conv1D(n_embd, n_embd)

    def forward(self, x: torch.Tensor, bias: torch.Tensor,
                past: KeyValue | None) -> tuple[torch.Tensor, KeyValue]:
        batch, length, width = x.shape
        q, k, v = (t.view(batch, length, self.n_head, -1).transpose(1, 2) for t in self.c_attn(x).split(width, dim=-1))
        if past is not None:
            k, v = torch.cat((past[0], k), dim=2), torch.cat((past[1], v), dim=2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.c_proj(y.transpose(1, 2).reshape(batch, length, width)), (k, v)


class MLP(nn.Module):
    def __init__(self, n_embd: int) -> None:
        super().__init__()
        self.c_fc = Conv1D(n_embd, 4 * n_embd)
        self.c_proj = Conv1D(4 * n_embd, n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))  # GPT-2's "gelu_new"


class Block(nn.Module):
    def __init__(self, n_embd: int, n_head: int, layer_norm_epsilon: float) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd, eps=layer_norm_epsilon)
        self.attn = Attention(n_embd, n_head)
        self.ln_2 = nn.LayerNorm(n_embd, eps=layer_norm_epsilon)
        self.mlp = MLP(n_embd)

    def forward(self, x: torch.Tensor, bias: torch.Tensor,
                past: KeyValue | None) -> tuple[torch.Tensor, KeyValue]:
        attended, present = self.attn(self.ln_1(x), bias, past)
        x = x + attended
        return x + self.mlp(self.ln_2(x)), present


def attention_bias(query_length: int, past_length: int, attention_mask: torch.Tensor | None,
                   dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Additive bias (B or 1, 1, L, L_past + L): 0 where a query may attend, the dtype's minimum elsewhere.

    Causal (query i sits at position ``past_length + i``) and, with ``attention_mask`` (B, L_past + L)
    of 1/0, blind to padded keys. The minimum rather than -inf keeps a query with no visible key
    (left padding) finite, as in Hugging Face's GPT-2.
    """
    total = past_length + query_length
    query_pos = torch.arange(past_length, total, device=device)[:, None]
    allowed = (torch.arange(total, device=device)[None, :] <= query_pos)[None, None]
    if attention_mask is not None:
        if attention_mask.shape[-1] != total:
            raise ValueError(f"attention_mask covers {attention_mask.shape[-1]} positions, "
                             f"expected past + new = {total}")
        allowed = allowed & attention_mask[:, None, None, :].bool()
    zero = torch.zeros((), dtype=dtype, device=device)
    return torch.where(allowed, zero, torch.finfo(dtype).min)


class GPT2(nn.Module):
    """The GPT-2 transformer (no LM head): token ids or embeddings -> final hidden states (B, L, n_embd)."""

    def __init__(self, vocab_size: int = 50257, n_positions: int = 1024, n_embd: int = 768, n_layer: int = 12,
                 n_head: int = 12, layer_norm_epsilon: float = 1e-5) -> None:
        super().__init__()
        self.n_positions = n_positions
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(n_positions, n_embd)
        nn.init.normal_(self.wte.weight, std=0.02)
        nn.init.normal_(self.wpe.weight, std=0.02)
        self.h = nn.ModuleList(Block(n_embd, n_head, layer_norm_epsilon) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd, eps=layer_norm_epsilon)

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                inputs_embeds: torch.Tensor | None = None, past_key_values: KeyValueCache | None = None,
                use_cache: bool = False) -> torch.Tensor | tuple[torch.Tensor, KeyValueCache]:
        """Hidden states (B, L, n_embd); with ``use_cache`` also the updated key/value cache.

        Give exactly one of ``input_ids`` (B, L) and ``inputs_embeds`` (B, L, n_embd). ``attention_mask``
        (B, L_past + L) of 1/0 hides padded keys; positions are ``L_past + arange(L)`` regardless of it.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("GPT2 needs exactly one of input_ids and inputs_embeds")
        x = self.wte(input_ids) if inputs_embeds is None else inputs_embeds
        past_length = 0 if past_key_values is None else past_key_values[0][0].shape[2]
        length = x.shape[1]
        if past_length + length > self.n_positions:
            raise ValueError(f"sequence of {past_length + length} tokens exceeds GPT-2's {self.n_positions} positions")
        x = x + self.wpe(torch.arange(past_length, past_length + length, device=x.device))
        bias = attention_bias(length, past_length, attention_mask, x.dtype, x.device)
        presents = []
        for i, block in enumerate(self.h):
            x, present = block(x, bias, None if past_key_values is None else past_key_values[i])
            presents.append(present)
        x = self.ln_f(x)
        return (x, tuple(presents)) if use_cache else x


class GPT2LMHead(nn.Module):
    """GPT-2 with its language-model head, tied to the token embedding: -> logits (B, L, vocab_size)."""

    def __init__(self, vocab_size: int = 50257, n_positions: int = 1024, n_embd: int = 768, n_layer: int = 12,
                 n_head: int = 12, layer_norm_epsilon: float = 1e-5) -> None:
        super().__init__()
        self.transformer = GPT2(vocab_size, n_positions, n_embd, n_layer, n_head, layer_norm_epsilon)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False, device="meta")  # weight replaced by the tie
        self.lm_head.weight = self.transformer.wte.weight

    def forward(self, input_ids: torch.Tensor | None = None, inputs_embeds: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, past_key_values: KeyValueCache | None = None,
                use_cache: bool = False) -> torch.Tensor | tuple[torch.Tensor, KeyValueCache]:
        """Next-token logits (B, L, vocab_size); with ``use_cache`` also the updated key/value cache."""
        out = self.transformer(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
                               past_key_values=past_key_values, use_cache=use_cache)
        if use_cache:
            hidden, presents = out
            return self.lm_head(hidden), presents
        return self.lm_head(out)
