"""Tokenizers: msclap's exact token ids (goldens), the '!' quirks, padding, long texts, errors."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from parity import parity_golden, parity_inputs
from torch import nn

from clapkit.models.clap import TextTower
from clapkit.text import TokenizerError, load_tokenizer


@pytest.fixture(scope="module")
def msclap_gpt2(gpt2_tokenizer_dir):
    return load_tokenizer(gpt2_tokenizer_dir, "msclap-gpt2")


@pytest.fixture(scope="module")
def plain_gpt2(gpt2_tokenizer_dir):
    return load_tokenizer(gpt2_tokenizer_dir, "gpt2")


@pytest.fixture(scope="module")
def bert(bert_tokenizer_dir):
    return load_tokenizer(bert_tokenizer_dir, "bert")


@pytest.mark.parametrize("kind", ["text", "prompt"])
def test_msclap_gpt2_matches_goldens(msclap_gpt2, kind):
    texts = parity_inputs("2023")[f"{kind}s"].tolist()
    golden = parity_golden("2023", fp64=False)
    batch = msclap_gpt2(texts, padding="max_length")
    assert set(batch) == {"input_ids", "attention_mask"}
    assert batch["input_ids"].dtype == torch.int64 and batch["attention_mask"].dtype == torch.int64
    np.testing.assert_array_equal(batch["input_ids"].numpy(), golden[f"{kind}_input_ids"])
    np.testing.assert_array_equal(batch["attention_mask"].numpy(), golden[f"{kind}_attention_mask"])
    pool_index = TextTower(nn.Identity(), "msclap").pool_index(batch["input_ids"], batch["attention_mask"])
    np.testing.assert_array_equal(pool_index.numpy(), golden[f"{kind}_pool_index"])


@pytest.mark.parametrize("kind", ["text", "prompt"])
def test_bert_matches_goldens(bert, kind):
    texts = parity_inputs("2022")[f"{kind}s"].tolist()
    golden = parity_golden("2022", fp64=False)
    batch = bert(texts, padding="max_length")
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids"}
    for key in batch:
        assert batch[key].dtype == torch.int64
        np.testing.assert_array_equal(batch[key].numpy(), golden[f"{kind}_{key}"])


def test_bang_quirks_only_in_msclap_style(msclap_gpt2, plain_gpt2):
    assert msclap_gpt2.encode("!!") == [0, 0]
    assert msclap_gpt2.encode(" !") == [220, 0]
    assert plain_gpt2.encode("!!") == [3228]
    assert plain_gpt2.encode(" !") == [5145]
    # A literal '!' is a real token: attended to, though msclap's pooling skips it.
    batch = msclap_gpt2(["glass breaking!"])
    assert batch["input_ids"][0].tolist() == msclap_gpt2.encode("glass breaking") + [0, 220, 50256]
    assert batch["attention_mask"][0].tolist() == [1] * 5


def test_longest_padding_is_the_max_length_batch_cut_short(msclap_gpt2, bert):
    for tokenizer, version in ((msclap_gpt2, "2023"), (bert, "2022")):
        texts = parity_inputs(version)["texts"].tolist()
        full = tokenizer(texts, padding="max_length")
        short = tokenizer(texts)
        longest = int(full["attention_mask"].sum(-1).max())
        assert short["input_ids"].shape == (len(texts), longest) < full["input_ids"].shape
        for key in full:
            torch.testing.assert_close(short[key], full[key][:, :longest], rtol=0, atol=0)


def test_plain_gpt2_ends_with_eos_and_pads_with_it(plain_gpt2):
    eos = plain_gpt2.eos_token_id
    assert eos == plain_gpt2.pad_token_id == 50256 and plain_gpt2.vocab_size == 50257
    batch = plain_gpt2(["a dog barks", "hi"])
    assert batch["input_ids"].tolist() == [plain_gpt2.encode("a dog barks") + [eos], [5303, eos, eos, eos, eos]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]
    # A literal end-of-text marker in a text is text, so the eos id only ever ends or pads.
    marker = plain_gpt2.encode("<|endoftext|>")
    assert eos not in marker
    assert plain_gpt2(["<|endoftext|>"])["input_ids"][0].tolist() == marker + [eos]


def test_text_longer_than_max_length_is_kept_whole(msclap_gpt2):
    text = "a very long caption " * 30
    batch = msclap_gpt2([text, "short"], padding="max_length")
    expected = msclap_gpt2.encode(text + " <|endoftext|>")
    assert len(expected) > 77
    assert batch["input_ids"].shape == (2, len(expected))
    assert batch["input_ids"][0].tolist() == expected


@pytest.mark.parametrize("style, limit, closing", [("msclap-gpt2", 1024, [220, 50256]), ("bert", 512, [102])])
def test_text_beyond_model_positions_is_cut_with_warning(style, limit, closing, gpt2_tokenizer_dir, bert_tokenizer_dir):
    tokenizer = load_tokenizer(bert_tokenizer_dir if style == "bert" else gpt2_tokenizer_dir, style)
    with pytest.warns(UserWarning, match=f"text 1 has .* tokens, more than the model's {limit} positions"):
        batch = tokenizer(["short", "word " * 1500])
    assert batch["input_ids"].shape == (2, limit)
    assert batch["input_ids"][1, -len(closing):].tolist() == closing
    assert batch["attention_mask"][1].sum() == limit


def test_encode_and_decode_match_msclap_captioner(msclap_gpt2):
    golden = parity_golden("clapcap", fp64=False)
    assert msclap_gpt2.encode(" <|endoftext|>")[0] == golden["stop_token_index"] == 220
    assert msclap_gpt2.encode(" EVE") == [int(golden["probe_stopEVE_stop_token_index"])]
    assert msclap_gpt2.encode(" Brent") == [int(golden["probe_stopBrent_stop_token_index"])]
    for ids, length, text in zip(golden["caption_best_ids"], golden["caption_best_len"], golden["caption_decoded"]):
        assert msclap_gpt2.decode(ids[:length].tolist()) == text
    best = golden["probe_stopEVE_beam_ids"][:, 0]
    for ids, length, text in zip(best, golden["probe_stopEVE_beam_len"][:, 0], golden["probe_stopEVE_decoded"]):
        assert msclap_gpt2.decode(torch.from_numpy(ids[:length])) == text


def test_missing_files_name_what_is_needed(tmp_path, gpt2_tokenizer_dir):
    shutil.copy(gpt2_tokenizer_dir / "vocab.json", tmp_path / "vocab.json")
    needed = r"lacks merges\.txt; put the gpt2 tokenizer files vocab\.json \+ merges\.txt"
    with pytest.raises(TokenizerError, match=needed):
        load_tokenizer(tmp_path, "msclap-gpt2")
    with pytest.raises(TokenizerError, match=r"does not exist; create it with vocab\.txt"):
        load_tokenizer(tmp_path / "bert", "bert")


def test_bad_arguments_raise_tokenizer_error(msclap_gpt2, gpt2_tokenizer_dir):
    with pytest.raises(TokenizerError, match="unknown tokenizer style 'clip'"):
        load_tokenizer(gpt2_tokenizer_dir, "clip")
    with pytest.raises(TokenizerError, match="non-empty list of strings"):
        msclap_gpt2("a single string")
    with pytest.raises(TokenizerError, match="non-empty list of strings"):
        msclap_gpt2([])
    with pytest.raises(TokenizerError, match="padding must be"):
        msclap_gpt2(["a"], padding="do_not_pad")


def test_uncached_hub_name_offline_says_what_to_do(monkeypatch):
    from clapkit.text.tokenizer import TokenizerError, load_tokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(TokenizerError, match="not cached .* pass a folder holding vocab.json"):
        load_tokenizer("gpt2", "msclap-gpt2")
