"""BERT (msclap 2022 text tower) reproduces transformers' BertModel as msclap runs it, on the parity fixtures."""
import numpy as np
import pytest
import torch
from parity import msclap_raw_state, parity_atol, parity_golden

from clapkit.models.bert import Bert
from clapkit.models.factory import get_config
from clapkit.models.projection import Projection
from clapkit.weights.formats.msclap import convert_msclap_state_dict


def with_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def tokens(kind: str) -> dict[str, torch.Tensor]:
    """Golden tokenisation of the texts or prompts (stored in the float32 golden file only)."""
    golden = parity_golden("2022", fp64=False)
    return {field: torch.from_numpy(golden[f"{kind}_{field}"])
            for field in ("input_ids", "attention_mask", "token_type_ids")}


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return convert_msclap_state_dict(msclap_raw_state("2022"), "msclap-2022")


@pytest.fixture(scope="module")
def bert(state) -> Bert:
    model = Bert(**get_config("msclap-2022").text.args)
    model.load_state_dict(with_prefix(state, "text.encoder."), strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def projection(state) -> Projection:
    model = Projection(768, 1024)
    model.load_state_dict(with_prefix(state, "text_projection."), strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def text_hidden(bert) -> torch.Tensor:
    with torch.inference_mode():
        return bert(**tokens("text"))


def test_checkpoint_keys_load_strictly(state, bert):
    """The ``bert`` fixture loads with strict=True; the key sets must also be exactly equal."""
    encoder_state = with_prefix(state, "text.encoder.")
    assert set(bert.state_dict()) == set(encoder_state)
    last_dense = encoder_state["encoder.layer.11.output.dense.weight"]
    assert torch.equal(bert.encoder.layer[11].output.dense.weight, last_dense)


@pytest.mark.parametrize("kind", ["text", "prompt"])
def test_cls_state_and_projection_match_golden(bert, projection, text_hidden, kind):
    with torch.inference_mode():
        hidden = text_hidden if kind == "text" else bert(**tokens(kind))
        pooled = hidden[:, 0]
        embedding = projection(pooled)
    golden = parity_golden("2022")
    for name, ours in ((f"{kind}_pooled", pooled), (f"{kind}_embedding", embedding)):
        assert ours.shape == golden[name].shape
        assert np.abs(ours.numpy() - golden[name]).max() <= parity_atol("2022", name)


@pytest.mark.parametrize("index", [0, 4])
def test_text_alone_and_unpadded_matches_text_in_padded_batch(bert, text_hidden, index):
    batch = tokens("text")
    length = int(batch["attention_mask"][index].sum())
    alone = {field: values[index:index + 1, :length] for field, values in batch.items()}
    with torch.inference_mode():
        hidden = bert(**alone)
    batched = text_hidden[index:index + 1, :length]
    assert torch.abs(hidden - batched).max() <= 1e-5 * torch.abs(batched).max()


def test_token_type_ids_default_to_segment_zero(bert):
    batch = {field: values[:1, :8] for field, values in tokens("text").items()}
    assert not batch["token_type_ids"].any()
    with torch.inference_mode():
        explicit = bert(**batch)
        default = bert(batch["input_ids"], batch["attention_mask"])
        segment_one = bert(batch["input_ids"], batch["attention_mask"], torch.ones_like(batch["input_ids"]))
    assert torch.equal(default, explicit)
    assert not torch.allclose(segment_one, explicit)


def tiny_bert() -> Bert:
    return Bert(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                max_position_embeddings=8).eval()


def test_rejects_mask_of_other_shape():
    with pytest.raises(ValueError, match="attention_mask shape"):
        tiny_bert()(torch.ones(2, 5, dtype=torch.long), torch.ones(2, 4, dtype=torch.long))


def test_rejects_text_longer_than_position_table():
    with pytest.raises(ValueError, match="at most 8"):
        tiny_bert()(torch.ones(1, 9, dtype=torch.long), torch.ones(1, 9, dtype=torch.long))
