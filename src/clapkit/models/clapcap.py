"""msclap's ``clapcap`` audio captioner: CLAP audio embedding -> transformer prefix mapper -> GPT-2 beam search.

The mapper keeps msclap's module names (``msclap/models/mapper.py``) so that the released
``clap_project.*`` keys load by prefix alone. ``batch_beam_search`` reproduces msclap's
``CLAPWrapper._generate_beam`` step for step for each clip of a batch, but feeds one new token per
beam through GPT-2's key/value cache instead of re-running the whole sequence, and advances the
beams of all clips still running in one decoder call.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from .clap import CLAP

EOS_TOKEN_ID = 50256  # GPT-2 '<|endoftext|>'
# msclap stops on tokenizer.encode(' <|endoftext|>')[0]: 220, a bare space ('Ġ'), not EOS.
MSCLAP_STOP_TOKEN_ID = 220


class Tokenizer(Protocol):
    """What ``generate`` needs of a tokenizer, e.g. ``clapkit.text.TextTokenizer``."""

    @property
    def end_token_id(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...


def prompt_ids(tokenizer: Tokenizer, prompt: str) -> list[int]:
    """How the decoder reads a question after the audio prefix: its tokens, closed by the end token."""
    return tokenizer.encode(prompt) + [tokenizer.end_token_id]


def question_sequences(tokenizer: Tokenizer, prompts: list[str], answers: list[str],
                       max_tokens: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher-forcing inputs for prompted answers: ``input_ids`` (B, L), each row ``prompt [end]
    answer [end]`` right-padded with the end token, and ``targets`` (B, L): the id that position
    ``i`` must predict (the answer's tokens and its closing end token; -100 elsewhere, ignored by
    the loss). Answers longer than ``max_tokens`` tokens are cut (their end token kept)."""
    end = tokenizer.end_token_id
    rows = []
    for prompt, answer in zip(prompts, answers, strict=True):
        question = prompt_ids(tokenizer, prompt)
        rows.append((question, tokenizer.encode(answer)[:max_tokens] + [end]))
    length = max(len(q) + len(a) for q, a in rows)
    input_ids = torch.full((len(rows), length), end, dtype=torch.long)
    targets = torch.full((len(rows), length), -100, dtype=torch.long)
    for row, (question, answer) in enumerate(rows):
        sequence = question + answer
        input_ids[row, :len(sequence)] = torch.tensor(sequence)
        # position i predicts token i + 1: the last question token predicts the answer's first
        targets[row, len(question) - 1:len(sequence) - 1] = torch.tensor(answer)
    return input_ids, targets


class MapperAttention(nn.Module):
    """Multi-head self-attention with msclap's parameter layout (bias-free queries and keys/values)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.to_queries = nn.Linear(dim, dim, bias=False)
        self.to_keys_values = nn.Linear(dim, 2 * dim, bias=False)
        self.project = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        head_dim = c // self.num_heads
        queries = self.to_queries(x).reshape(b, n, self.num_heads, head_dim)
        keys, values = self.to_keys_values(x).reshape(b, n, 2, self.num_heads, head_dim).unbind(2)
        attention = torch.einsum("bnhd,bmhd->bnmh", queries, keys) * head_dim ** -0.5
        out = torch.einsum("bnmh,bmhd->bnhd", attention.softmax(dim=2), values)
        return self.project(out.reshape(b, n, c))


class MapperMLP(nn.Module):
    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x)))


class MapperLayer(nn.Module):
    """Pre-norm transformer layer: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MapperAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MapperMLP(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class MapperTransformer(nn.Module):
    def __init__(self, dim: int, num_heads: int, num_layers: int, mlp_ratio: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(MapperLayer(dim, num_heads, mlp_ratio) for _ in range(num_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class TransformerMapper(nn.Module):
    """Audio embedding (B, in_dim) -> GPT-2 prefix (B, prefix_length, dim).

    ``linear`` unfolds the embedding into ``clip_length`` tokens, a learnt constant of
    ``prefix_length`` tokens is appended, and the transformer's outputs at the constant's
    positions are the prefix.
    """

    def __init__(self, in_dim: int, dim: int, prefix_length: int, clip_length: int, num_layers: int = 8,
                 num_heads: int = 8, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        self.clip_length = clip_length
        self.transformer = MapperTransformer(dim, num_heads, num_layers, mlp_ratio)
        self.linear = nn.Linear(in_dim, clip_length * dim)
        self.prefix_const = nn.Parameter(torch.randn(prefix_length, dim))

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        clip_tokens = self.linear(embedding).view(embedding.shape[0], self.clip_length, -1)
        const = self.prefix_const.unsqueeze(0).expand(embedding.shape[0], -1, -1)
        return self.transformer(torch.cat((clip_tokens, const), dim=1))[:, self.clip_length:]


@dataclass
class Beams:
    """Final beam-search state, best beam first.

    ``tokens`` (beam_size, steps) holds every generated id, including the stop token and the
    id-0 filler appended to stopped beams; a beam's caption is ``tokens[i, :lengths[i]]``.
    ``scores`` are the length-normalised sums of log-probabilities that order the beams.
    """

    tokens: torch.Tensor
    lengths: torch.Tensor
    scores: torch.Tensor
    steps: int

    def ids(self, index: int = 0) -> list[int]:
        """Token ids of beam ``index`` (0 = best), up to and including its stop token."""
        return self.tokens[index, : int(self.lengths[index])].tolist()


def _select_beams(past: Any, index: torch.Tensor) -> Any:
    """Reorder (or expand) every tensor of a key/value cache along its batch dimension."""
    if isinstance(past, torch.Tensor):
        return past.index_select(0, index)
    return type(past)(_select_beams(item, index) for item in past)


def _last_logits(decoder: nn.Module, embeds: torch.Tensor, past: Any) -> tuple[torch.Tensor, Any]:
    """Logits at the last position only (the LM head over all 40 prefix positions would dominate step 0)."""
    hidden, past = decoder.transformer(inputs_embeds=embeds, past_key_values=past, use_cache=True)
    return decoder.lm_head(hidden[:, -1]), past


def _next_logprobs(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    # softmax().log() rather than log_softmax(): msclap's arithmetic, kept for exact beam parity.
    return (logits / (temperature if temperature > 0 else 1.0)).softmax(-1).log()


def _cache_rows(clip_rows: torch.Tensor, beam_index: torch.Tensor, beam_size: int) -> torch.Tensor:
    """Flat key/value cache rows of beams (clips, k): the cache holds clip i's beam j at row ``i * beam_size + j``."""
    return (clip_rows[:, None] * beam_size + beam_index).view(-1)


def _finished_beams(tokens: torch.Tensor, seq_lengths: torch.Tensor, scores: torch.Tensor, steps: int) -> Beams:
    final_scores = scores / seq_lengths
    order = final_scores.argsort(descending=True)
    return Beams(tokens[order], seq_lengths[order].long(), final_scores[order], steps)


@torch.no_grad()
def batch_beam_search(decoder: nn.Module, prefix_embeds: torch.Tensor, beam_size: int = 5, max_length: int = 67,
                      temperature: float = 1.0, stop_token_id: int = MSCLAP_STOP_TOKEN_ID) -> list[Beams]:
    """Beam search of a GPT-2 LM head (``GPT2LMHead``) from a batch of prefixes (B, P, dim): one ``Beams`` per clip.

    Each clip follows msclap's ``_generate_beam`` on its own: a beam that emits ``stop_token_id`` is
    frozen (its only continuation is id 0 at log-prob 0, and its length stops growing), candidates
    are ranked by ``score / length`` within the clip, and the clip's search ends after
    ``max_length`` steps or once all its beams have stopped. The B × ``beam_size`` beams of the
    clips still running go through the decoder together, one new token each per step.
    """
    if prefix_embeds.dim() != 3 or prefix_embeds.shape[0] < 1:
        raise ValueError(f"prefix_embeds must have shape (B, P, dim) with B >= 1, got {tuple(prefix_embeds.shape)}")
    if beam_size < 1 or max_length < 1:
        raise ValueError(f"beam_size and max_length must be at least 1, got {beam_size} and {max_length}")
    wte = decoder.transformer.wte
    device = prefix_embeds.device
    logits, past = _last_logits(decoder, prefix_embeds, None)
    scores, next_tokens = _next_logprobs(logits, temperature).topk(beam_size)  # (clips, beam_size)
    tokens = next_tokens.unsqueeze(-1)
    clips = torch.arange(prefix_embeds.shape[0], device=device)  # batch index of each clip still running
    past = _select_beams(past, clips.repeat_interleave(beam_size))
    seq_lengths = torch.ones_like(scores)
    is_stopped = next_tokens.eq(stop_token_id)
    results: list[Beams | None] = [None] * prefix_embeds.shape[0]
    steps = 1
    while True:
        done = is_stopped.all(dim=1) | (steps >= max_length)
        for row in done.nonzero().flatten().tolist():
            results[int(clips[row])] = _finished_beams(tokens[row], seq_lengths[row], scores[row], steps)
        if done.all():
            return results
        if done.any():  # finished clips leave the batch, so they stop changing and cost nothing
            running = (~done).nonzero().flatten()
            clips, tokens, next_tokens = clips[running], tokens[running], next_tokens[running]
            scores, seq_lengths, is_stopped = scores[running], seq_lengths[running], is_stopped[running]
            past = _select_beams(past, _cache_rows(running, torch.arange(beam_size, device=device), beam_size))
        logits, past = _last_logits(decoder, wte(next_tokens.view(-1, 1)), past)
        logprobs = _next_logprobs(logits, temperature).view(len(clips), beam_size, -1)
        logprobs[is_stopped] = -float("inf")
        logprobs[is_stopped, 0] = 0
        scores_sum = scores[..., None] + logprobs
        seq_lengths = seq_lengths + (~is_stopped).to(seq_lengths.dtype)
        scores_average, flat_index = (scores_sum / seq_lengths[..., None]).flatten(1).topk(beam_size)
        source = flat_index // logprobs.shape[-1]  # beam within its clip
        next_tokens = flat_index % logprobs.shape[-1]
        seq_lengths = seq_lengths.gather(1, source)
        scores = scores_average * seq_lengths
        history = tokens.gather(1, source[..., None].expand(-1, -1, tokens.shape[-1]))
        tokens = torch.cat((history, next_tokens[..., None]), dim=-1)
        past = _select_beams(past, _cache_rows(torch.arange(len(clips), device=device), source, beam_size))
        is_stopped = is_stopped.gather(1, source) | next_tokens.eq(stop_token_id)
        steps += 1


def beam_search(decoder: nn.Module, prefix_embed: torch.Tensor, beam_size: int = 5, max_length: int = 67,
                temperature: float = 1.0, stop_token_id: int = MSCLAP_STOP_TOKEN_ID) -> Beams:
    """Beam search from one prefix (1, P, dim), as msclap's ``_generate_beam``; see ``batch_beam_search``."""
    if prefix_embed.dim() != 3 or prefix_embed.shape[0] != 1:
        raise ValueError(f"prefix_embed must have shape (1, P, dim), got {tuple(prefix_embed.shape)}")
    return batch_beam_search(decoder, prefix_embed, beam_size, max_length, temperature, stop_token_id)[0]


class ClapCap(nn.Module):
    """CLAP audio tower + prefix mapper + frozen GPT-2 language model (msclap ``clapcap``)."""

    def __init__(self, clap: CLAP, decoder: nn.Module, prefix_length: int = 40, mapper_layers: int = 8,
                 normalize_prefix: bool = True) -> None:
        super().__init__()
        self.clap = clap
        self.decoder = decoder
        self.normalize_prefix = normalize_prefix
        embed_dim = clap.audio_projection.linear1.out_features
        word_dim = decoder.transformer.wte.embedding_dim
        self.mapper = TransformerMapper(embed_dim, word_dim, prefix_length, prefix_length, mapper_layers)

    @property
    def audio(self) -> nn.Module:
        """The audio tower (front end and encoder), shared with contrastive models' ``audio``."""
        return self.clap.audio

    def encode_audio(self, waveform: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """(B, T) waveform -> (B, embed_dim) CLAP audio projection (as ``CLAP.encode_audio``)."""
        return self.clap.encode_audio(waveform, normalize)

    def audio_embedding(self, waveform: torch.Tensor) -> torch.Tensor:
        """(B, T) waveform -> (B, embed_dim) projected audio embedding, L2-normalised if ``normalize_prefix``."""
        embedding = self.clap.encode_audio(waveform)
        return embedding / embedding.norm(2, -1, keepdim=True) if self.normalize_prefix else embedding

    def prefix(self, waveform: torch.Tensor) -> torch.Tensor:
        """(B, T) waveform -> (B, prefix_length, dim) GPT-2 input embeddings."""
        return self.mapper(self.audio_embedding(waveform))

    def forward(self, waveform: torch.Tensor, input_ids: torch.Tensor,
                positions: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher-forced logits for token ids (B, L) after the audio prefix: (B, prefix_length + L,
        vocab), or with ``positions`` (a (B, L) boolean mask) only at those positions of ``input_ids``,
        (N, vocab): the language-model head over a large vocabulary is the decoder's dearest part."""
        return self.decode(self.prefix(waveform), input_ids, positions)

    def decode(self, prefix: torch.Tensor, input_ids: torch.Tensor,
               positions: torch.Tensor | None = None) -> torch.Tensor:
        """As ``forward``, from prefixes (B, P, dim) already computed."""
        embeds = torch.cat((prefix, self.decoder.transformer.wte(input_ids)), dim=1)
        if positions is None:
            return self.decoder(inputs_embeds=embeds)
        hidden = self.decoder.transformer(inputs_embeds=embeds)[:, prefix.shape[1]:]
        return self.decoder.lm_head(hidden[positions])

    @torch.no_grad()
    def generate(self, waveform: torch.Tensor, tokenizer: Tokenizer, beam_size: int = 5, max_length: int = 67,
                 temperature: float = 1.0, stop: str = "msclap", prompt: str | None = None) -> list[str]:
        """One caption per clip of a (B, T) waveform batch; with ``prompt``, the answer to that question
        (a model trained with ``--stage audio-pretrain`` reads it after the audio prefix).

        ``stop="msclap"`` reproduces msclap: it stops on id 220 (msclap's ``encode(' <|endoftext|>')[0]``,
        a bare space, which the released model emits before EOS) and ``str.capitalize()``s the
        caption, lower-casing the rest. ``stop="eos"`` stops on the tokenizer's end token
        (``<|endoftext|>``, ``[SEP]``) and returns the text as decoded, without surrounding
        whitespace. The stop token is not part of the caption.
        """
        if stop not in ("msclap", "eos"):
            raise ValueError(f"unknown stop rule {stop!r}; expected 'msclap' or 'eos'")
        stop_token_id = MSCLAP_STOP_TOKEN_ID if stop == "msclap" else tokenizer.end_token_id
        prefix = self.prefix(waveform)
        if prompt is not None:
            question = torch.tensor(prompt_ids(tokenizer, prompt), device=prefix.device)
            question = self.decoder.transformer.wte(question).unsqueeze(0).expand(len(prefix), -1, -1)
            prefix = torch.cat((prefix, question.to(prefix.dtype)), dim=1)
        captions = []
        for beams in batch_beam_search(self.decoder, prefix, beam_size, max_length, temperature,
                                       stop_token_id):
            ids = beams.ids(0)
            text = tokenizer.decode(ids[:-1] if ids[-1] == stop_token_id else ids)
            captions.append(text.capitalize() if stop == "msclap" else text.strip())
        return captions
