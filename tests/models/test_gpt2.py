"""GPT-2: msclap parity (2023 text tower, clapcap decoder), key/value cache, padding and batch independence."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from parity import msclap_raw_state, parity_atol, parity_golden, parity_inputs

from clapkit.models.clap import TextTower
from clapkit.models.gpt2 import GPT2, GPT2LMHead
from clapkit.models.projection import Projection
from clapkit.text import load_tokenizer
from clapkit.weights.formats.msclap import convert_msclap_state_dict


def _with_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


@pytest.fixture(scope="module")
def state_2023():
    return convert_msclap_state_dict(msclap_raw_state("2023"), "msclap-2023")


@pytest.fixture(scope="module")
def tower(state_2023):
    gpt2 = GPT2()
    gpt2.load_state_dict(_with_prefix(state_2023, "text.encoder."), strict=True)
    return TextTower(gpt2, "msclap").eval()


@pytest.fixture(scope="module")
def projection(state_2023):
    projection = Projection(768, 1024)
    projection.load_state_dict(_with_prefix(state_2023, "text_projection."), strict=True)
    return projection.eval()


@pytest.fixture(scope="module")
def pooled_77(tower):
    """msclap's 77-padded golden token ids through our tower, for texts and prompts."""
    golden = parity_golden("2023", fp64=False)
    with torch.no_grad():
        return {kind: tower(torch.from_numpy(golden[f"{kind}_input_ids"]),
                            torch.from_numpy(golden[f"{kind}_attention_mask"]))
                for kind in ("text", "prompt")}


@pytest.fixture(scope="module")
def decoder():
    state = convert_msclap_state_dict(msclap_raw_state("clapcap"), "msclap-clapcap")
    model = GPT2LMHead()
    model.load_state_dict(_with_prefix(state, "decoder."), strict=True)
    return model.eval()


def test_no_legacy_buffers_in_state_dict():
    keys = GPT2(n_layer=2).state_dict().keys()
    assert not [k for k in keys if re.search(r"\.attn\.(bias|masked_bias)$", k)]
    assert "h.1.attn.c_attn.weight" in keys and "h.1.mlp.c_fc.weight" in keys


@pytest.mark.parametrize("kind", ["text", "prompt"])
def test_text_tower_matches_msclap_2023(kind, pooled_77, projection):
    golden = parity_golden("2023")
    pooled = pooled_77[kind]
    pooled_error = np.abs(pooled.numpy() - golden[f"{kind}_pooled"]).max()
    assert pooled_error <= parity_atol("2023", f"{kind}_pooled")
    with torch.no_grad():
        embedding = projection(pooled)
    embedding_error = np.abs(embedding.numpy() - golden[f"{kind}_embedding"]).max()
    assert embedding_error <= parity_atol("2023", f"{kind}_embedding")


def test_longest_padding_leaves_pooled_embedding_unchanged(tower, pooled_77, gpt2_tokenizer_dir):
    """Right padding is invisible to a causal model at the msclap pooling position (never past the last
    real token), so padding to the batch's longest text instead of 77 changes nothing but the cost."""
    tokenizer = load_tokenizer(gpt2_tokenizer_dir, "msclap-gpt2")
    for kind in ("text", "prompt"):
        batch = tokenizer(parity_inputs("2023")[f"{kind}s"].tolist(), padding="longest")
        assert batch["input_ids"].shape[1] < 77
        with torch.no_grad():
            pooled = tower(**batch)
        torch.testing.assert_close(pooled, pooled_77[kind], rtol=0, atol=1e-5)


def test_pooled_embedding_independent_of_batch(tower, pooled_77):
    golden = parity_golden("2023", fp64=False)
    ids, mask = torch.from_numpy(golden["text_input_ids"]), torch.from_numpy(golden["text_attention_mask"])
    for rows in ([4], [1, 5]):
        with torch.no_grad():
            pooled = tower(ids[rows], mask[rows])
        torch.testing.assert_close(pooled, pooled_77["text"][rows], rtol=0, atol=1e-5)


def test_lm_head_loads_clapcap_tied(decoder):
    raw = msclap_raw_state("clapcap")
    assert decoder.lm_head.weight is decoder.transformer.wte.weight
    torch.testing.assert_close(decoder.lm_head.weight, raw["gpt.lm_head.weight"], rtol=0, atol=0)


def test_lm_head_matches_msclap_clapcap(decoder):
    """Teacher-forced log-probs of msclap's best captions after the golden prefix (40 mapper outputs)."""
    golden = parity_golden("clapcap")
    prefix = torch.from_numpy(golden["prefix_embed"]).float()
    best_ids = torch.from_numpy(parity_golden("clapcap", fp64=False)["caption_best_ids"])
    assert (best_ids >= 0).all()  # all five captions run the full 67 steps, no -1 padding
    with torch.no_grad():
        hidden = decoder.transformer(inputs_embeds=torch.cat((prefix, decoder.transformer.wte(best_ids[:, :-1])), 1))
        logprobs = decoder.lm_head(hidden[:, prefix.shape[1] - 1:]).log_softmax(-1)  # the positions that predict
    first_step = logprobs[:, 0].numpy()
    assert np.abs(first_step - golden["caption_first_step_logprobs"]).max() <= parity_atol(
        "clapcap", "caption_first_step_logprobs")
    teacher_forced = logprobs.gather(-1, best_ids[..., None])[..., 0].numpy()
    assert np.abs(teacher_forced - golden["caption_teacher_forced_logprobs"]).max() <= parity_atol(
        "clapcap", "caption_teacher_forced_logprobs")


def test_kv_cache_decoding_equals_full_forward(decoder):
    golden = parity_golden("clapcap", fp64=False)
    gpt2 = decoder.transformer
    prefix = torch.from_numpy(golden["prefix_embed"][:2])
    tokens = torch.from_numpy(golden["caption_best_ids"][:2, :6])
    with torch.no_grad():
        full = gpt2(inputs_embeds=torch.cat((prefix, gpt2.wte(tokens)), 1))
        hidden, cache = gpt2(inputs_embeds=prefix, use_cache=True)
        steps = [hidden]
        for step in range(tokens.shape[1]):
            hidden, cache = gpt2(input_ids=tokens[:, step:step + 1], past_key_values=cache, use_cache=True)
            steps.append(hidden)
    assert len(cache) == 12 and cache[0][0].shape == (2, 12, prefix.shape[1] + tokens.shape[1], 64)
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=0, atol=1e-5)


def test_lm_head_cache_and_tie():
    torch.manual_seed(0)
    model = GPT2LMHead(vocab_size=50, n_positions=16, n_embd=32, n_layer=2, n_head=4).eval()
    ids = torch.randint(0, 50, (2, 9))
    with torch.no_grad():
        full = model(ids)
        head, cache = model(ids[:, :6], use_cache=True)
        tail, _ = model(ids[:, 6:], past_key_values=cache, use_cache=True)
        torch.testing.assert_close(full, model.transformer(ids) @ model.transformer.wte.weight.T, rtol=0, atol=1e-6)
    torch.testing.assert_close(torch.cat((head, tail), 1), full, rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def small_gpt2():
    torch.manual_seed(0)
    return GPT2(vocab_size=50, n_positions=16, n_embd=32, n_layer=2, n_head=4).eval()


def test_attention_mask_hides_padded_keys(small_gpt2):
    ids = torch.randint(0, 50, (1, 8))
    other = ids.clone()
    other[0, 3] = (ids[0, 3] + 1) % 50
    mask = torch.ones(1, 8, dtype=torch.long)
    mask[0, 3] = 0
    with torch.no_grad():
        hidden, hidden_other = small_gpt2(ids, mask), small_gpt2(other, mask)
        unmasked, unmasked_other = small_gpt2(ids), small_gpt2(other)
    keep = [i for i in range(8) if i != 3]
    torch.testing.assert_close(hidden[:, keep], hidden_other[:, keep], rtol=0, atol=1e-6)
    assert (unmasked[:, 4:] - unmasked_other[:, 4:]).abs().max() > 1e-3


def test_kv_cache_with_attention_mask(small_gpt2):
    ids = torch.randint(0, 50, (2, 7))
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, :2] = 0  # left padding: the first query of row 1 sees no key and must stay finite
    with torch.no_grad():
        full = small_gpt2(ids, mask)
        head, cache = small_gpt2(ids[:, :5], mask[:, :5], use_cache=True)
        tail = small_gpt2(ids[:, 5:], mask, past_key_values=cache)
    assert torch.isfinite(full).all()
    real = mask.bool()  # a padded query's output is meaningless (and not comparable when it sees no key)
    torch.testing.assert_close(torch.cat((head, tail), 1)[real], full[real], rtol=0, atol=1e-5)


def test_bad_inputs_raise(small_gpt2):
    ids = torch.zeros(1, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="exactly one of input_ids and inputs_embeds"):
        small_gpt2(ids, inputs_embeds=torch.zeros(1, 4, 32))
    with pytest.raises(ValueError, match="17 tokens exceeds GPT-2's 16 positions"):
        small_gpt2(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match="attention_mask covers 3 positions"):
        small_gpt2(ids, torch.ones(1, 3))
