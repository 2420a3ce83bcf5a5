"""Tokenization for the text towers, on top of ``transformers.AutoTokenizer``.

Styles:

- ``"msclap-gpt2"``: msclap's GPT-2 rule, reproduced exactly. Each text gets ``' <|endoftext|>'``
  appended and ``'!'`` (id 0) is registered as the pad token. Because ``'!'`` is then a special
  token it also splits BPE (``"!!"`` -> ``[0, 0]``, ``" !"`` -> ``[220, 0]``); msclap's pooling
  (``count(ids != 0) - 1``) depends on both quirks, so they are kept.
- ``"bert"``: ``[CLS] … [SEP]``, pad id 0, ``token_type_ids`` of zeros (msclap 2022).
- ``"roberta"``: ``<s> … </s>``, pad ``<pad>`` (LAION-CLAP, padded to 77 as LAION does).
- ``"gpt2"``: plain GPT-2 for new models: the text, then the end-of-text token (50256), which also
  pads. A literal ``"<|endoftext|>"`` in a text is tokenized as ordinary text, so 50256 never
  occurs inside a text and the pad id is no text token; padding is told apart by ``attention_mask``
  (pool with ``"last"``). The vocabulary stays GPT-2's 50257 tokens.

Padding is on the right. ``padding="max_length"`` pads to the style's length (77 for GPT-2, 100 for
BERT, as msclap); ``"longest"`` pads to the longest text of the batch, which for a causal GPT-2 gives
the same pooled embeddings at a fraction of the cost. msclap never truncates, so a text longer than
``max_length`` keeps all its tokens (the batch is then padded to it). Only texts longer than the
model's positions (1024 for GPT-2, 512 for BERT), on which msclap crashes, are cut: their middle is
dropped with a warning, keeping the closing tokens that pooling relies on.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from transformers import AutoTokenizer

from ..errors import TokenizerError
from ..hub import hub_reachable, quiet_hub


@dataclass(frozen=True)
class _Style:
    family: str                  # AutoTokenizer's tokenizer_type
    files: tuple[str, ...]       # the vocabulary files a local folder needs (or a tokenizer.json)
    max_length: int              # padding="max_length" target
    max_positions: int           # the model's position limit
    closing_tokens: int          # tokens at the end that survive truncation


_STYLES = {
    "msclap-gpt2": _Style("gpt2", ("vocab.json", "merges.txt"), 77, 1024, 2),  # ' <|endoftext|>' = [220, 50256]
    "gpt2": _Style("gpt2", ("vocab.json", "merges.txt"), 77, 1024, 1),
    "bert": _Style("bert", ("vocab.txt",), 100, 512, 1),
    "roberta": _Style("roberta", ("vocab.json", "merges.txt"), 77, 512, 1),
}


class TextTokenizer:
    """Texts -> padded int64 ``input_ids`` and ``attention_mask`` (+ ``token_type_ids`` for BERT).

    Build it with :func:`load_tokenizer`. Also encodes and decodes single texts (the captioner's side).
    """

    def __init__(self, hf_tokenizer, style: str, max_length: int | None = None) -> None:
        self.style = style
        self._spec = _STYLES[style]
        self.max_length = max_length or self._spec.max_length
        self._tokenizer = hf_tokenizer
        if style == "msclap-gpt2":
            hf_tokenizer.add_special_tokens({"pad_token": "!"})
        elif style == "gpt2":
            hf_tokenizer.pad_token = hf_tokenizer.eos_token

    @property
    def pad_token_id(self) -> int:
        return self._tokenizer.pad_token_id

    @property
    def eos_token_id(self) -> int | None:
        """GPT-2's end-of-text id (50256); None for BERT."""
        return self._tokenizer.eos_token_id

    @property
    def end_token_id(self) -> int:
        """The token that closes a text: ``<|endoftext|>`` for GPT-2, ``[SEP]`` / ``</s>`` for BERT / RoBERTa."""
        return self._tokenizer.eos_token_id if self._spec.family == "gpt2" else self._tokenizer.sep_token_id

    @property
    def vocab_size(self) -> int:
        return len(self._tokenizer)

    def encode(self, text: str) -> list[int]:
        """The token ids of ``text`` alone: no end token, no [CLS]/[SEP], no padding."""
        return self._tokenizer.encode(text, add_special_tokens=False, split_special_tokens=self.style == "gpt2")

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """Token ids -> text, special tokens included and spaces kept as they are (as msclap's captions)."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return self._tokenizer.decode(ids, clean_up_tokenization_spaces=False)

    def __call__(self, texts: Sequence[str], padding: str = "longest") -> dict[str, torch.Tensor]:
        """Tokenize and right-pad a batch; ``padding`` is ``"longest"`` or ``"max_length"``."""
        if padding not in ("longest", "max_length"):
            raise TokenizerError(f"padding must be 'longest' or 'max_length', got {padding!r}")
        if isinstance(texts, str) or not texts or not all(isinstance(t, str) for t in texts):
            raise TokenizerError(f"texts must be a non-empty list of strings, got {texts!r:.80}")
        sequences = []
        for index, text in enumerate(texts):
            sequences.append(self._truncate(self._token_ids(text), index))
        longest = max(len(ids) for ids in sequences)
        length = max(longest, self.max_length) if padding == "max_length" else longest
        input_ids = torch.full((len(sequences), length), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(sequences), length), dtype=torch.long)
        for row, ids in enumerate(sequences):
            input_ids[row, :len(ids)] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, :len(ids)] = 1
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self._spec.family == "bert":
            batch["token_type_ids"] = torch.zeros_like(input_ids)
        return batch

    def _token_ids(self, text: str) -> list[int]:
        if self.style == "msclap-gpt2":
            return self._tokenizer.encode(text + " <|endoftext|>", add_special_tokens=False)
        if self.style == "gpt2":
            return self.encode(text) + [self.eos_token_id]
        return self._tokenizer.encode(text, add_special_tokens=True)

    def _truncate(self, ids: list[int], index: int) -> list[int]:
        limit = self._spec.max_positions
        if len(ids) <= limit:
            return ids
        warnings.warn(f"text {index} has {len(ids)} tokens, more than the model's {limit} positions; "
                      f"keeping the first {limit - self._spec.closing_tokens} and the closing tokens", stacklevel=3)
        closing = self._spec.closing_tokens
        return ids[:limit - closing] + ids[-closing:]


def _looks_local(name_or_path: str) -> bool:
    # Hub repo ids never start with '.', '/' or '~', so such names are folders even when missing.
    return name_or_path.startswith((".", "/", "~")) or Path(name_or_path).exists()


def _check_folder(folder: Path, spec: _Style) -> None:
    if not folder.is_dir():
        raise TokenizerError(f"tokenizer folder {folder} does not exist; create it with {' + '.join(spec.files)} "
                             f"(the {spec.family} tokenizer files) or pass a Hugging Face Hub name")
    missing = [f for f in spec.files if not (folder / f).is_file()]
    if missing and not (folder / "tokenizer.json").is_file():
        raise TokenizerError(f"tokenizer folder {folder} lacks {', '.join(missing)}; put the {spec.family} "
                             f"tokenizer files {' + '.join(spec.files)} (or a tokenizer.json) there")


def _hub_name(name: str, spec) -> str:
    """A Hub name, checked to be loadable: from the Hub's cache, or from the Hub when reachable."""
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(name, spec.files[0]), str) or hub_reachable():
        return name
    raise TokenizerError(f"the {spec.family} tokenizer {name!r} is not cached and the Hugging Face Hub is "
                         f"unreachable; pass a folder holding {' + '.join(spec.files)} (e.g. --tokenizer DIR)")


def load_tokenizer(name_or_path: str | Path, style: str, max_length: int | None = None) -> TextTokenizer:
    """A :class:`TextTokenizer` from a local folder (e.g. one holding GPT-2's ``vocab.json`` +
    ``merges.txt``) or a Hugging Face Hub name (``"gpt2"``, ``"bert-base-uncased"``; needs network or cache).

    ``style``: ``"msclap-gpt2"``, ``"bert"``, ``"roberta"`` or ``"gpt2"`` (see the module docstring). ``max_length``
    overrides the style's ``padding="max_length"`` target.
    """
    if style not in _STYLES:
        raise TokenizerError(f"unknown tokenizer style {style!r}; known: {', '.join(_STYLES)}")
    spec = _STYLES[style]
    name = str(name_or_path)
    if _looks_local(name):
        folder = Path(name).expanduser()
        _check_folder(folder, spec)
        name = str(folder)
    else:
        name = _hub_name(name, spec)
    try:
        with quiet_hub():
            hf_tokenizer = AutoTokenizer.from_pretrained(name, tokenizer_type=spec.family)
    except (OSError, ValueError) as err:
        raise TokenizerError(f"cannot load the {spec.family} tokenizer {name!r} ({type(err).__name__}); offline, "
                             f"pass a folder holding {' + '.join(spec.files)}") from err
    # transformers 5 builds an empty tokenizer instead of failing when no files are found (e.g. a
    # Hub name under HF_HUB_OFFLINE=1); a real vocabulary has at least its 256 byte/character tokens.
    if len(hf_tokenizer.get_vocab()) < 256:
        raise TokenizerError(f"no {spec.family} vocabulary found for {name!r}; offline, pass a folder holding "
                             f"{' + '.join(spec.files)}")
    return TextTokenizer(hf_tokenizer, style, max_length)
