"""HTSAT reproduces msclap's HTSAT_Swin_Transformer (synthetic-weight goldens) and loads its checkpoints."""
import numpy as np
import pytest
import torch
from parity import msclap_raw_state, parity_atol, parity_golden, parity_inputs

from clapkit.models.clap import AudioTower
from clapkit.models.factory import build_frontend, get_config
from clapkit.models.htsat import HTSAT, SwinTransformerBlock, rows_per_pass
from clapkit.models.projection import Projection
from clapkit.weights.formats.msclap import convert_msclap_state_dict
from clapkit.weights.loading import load_state_dict_strict

# parity version -> (clapkit variant, prefix of the HTSAT keys, prefix of the audio projection keys)
VERSIONS = {"2023": ("msclap-2023", "audio.", "audio_projection."),
            "clapcap": ("msclap-clapcap", "clap.audio.", "clap.audio_projection.")}


def converted_state(version: str, prefix: str) -> dict[str, torch.Tensor]:
    """The checkpoint's keys under ``prefix``, with the tscam classifier (msclap's unused ``head``
    Linear aside) for the encoder-level parity checks."""
    variant, audio_prefix, projection_prefix = VERSIONS[version]
    state = convert_msclap_state_dict(msclap_raw_state(version), variant, keep_heads=True)
    state = {k: v for k, v in state.items() if ".encoder.head." not in k}
    prefix = {"encoder": audio_prefix + "encoder.", "frontend": audio_prefix + "frontend.",
              "projection": projection_prefix}[prefix]
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def build_htsat(**overrides) -> HTSAT:
    """msclap 2023's HTSAT with its 527-class tscam head (CLAP itself builds none)."""
    return HTSAT(**{**get_config("msclap-2023").audio.args, "num_classes": 527, **overrides}).eval()


def derived_and_persistent(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {**dict(model.named_buffers()), **model.state_dict()}


@pytest.fixture(scope="module")
def htsat_2023() -> HTSAT:
    model = build_htsat()
    load_state_dict_strict(model, converted_state("2023", "encoder"), "msclap")
    return model


@pytest.fixture(scope="module")
def golden_2023():
    return parity_golden("2023")


def max_error(actual: torch.Tensor, golden: np.ndarray) -> float:
    assert tuple(actual.shape) == golden.shape
    return float(np.abs(actual.double().numpy() - golden).max())


def test_constructed_buffers_equal_msclap_checkpoint_and_are_not_saved():
    model = build_htsat()
    fresh = dict(model.named_buffers())
    checkpoint = converted_state("2023", "encoder")
    buffers = [k for k in fresh if k.endswith(("attn_mask", "relative_position_index"))]
    assert not any(k in model.state_dict() for k in buffers)  # derived at construction, like timm
    assert len(buffers) == 12 + 5  # an index per block, a mask per shifted block (none in the last stage)
    for key in buffers:
        assert fresh[key].dtype == checkpoint[key].dtype, key
        assert torch.equal(fresh[key], checkpoint[key]), key


def test_strict_load_names_a_missing_key():
    state = converted_state("2023", "encoder")
    del state["layers.2.blocks.3.attn.relative_position_bias_table"]
    with pytest.raises(RuntimeError, match=r"layers\.2\.blocks\.3\.attn\.relative_position_bias_table"):
        build_htsat().load_state_dict(state, strict=True)


def test_parity_2023_intermediates_and_outputs(htsat_2023, golden_2023):
    logmel = torch.from_numpy(golden_2023["audio_logmel"]).float()
    with torch.no_grad():
        image = htsat_2023.wav2img(logmel)
        tokens = htsat_2023.forward_features(image)
        embedding, clipwise = htsat_2023.forward_head(tokens)
    outputs = {"audio_wav2img": image, "audio_htsat_final_tokens": tokens,
               "audio_embedding_pre_projection": embedding, "audio_clipwise_output": clipwise}
    for name, value in outputs.items():
        assert max_error(value, golden_2023[name]) <= parity_atol("2023", name), name


def test_float64_matches_float64_golden_closely(htsat_2023, golden_2023):
    """In float64 only the order of operations differs from msclap: agreement is ~1e-12, far
    tighter than the float32 tolerances, so any architectural deviation would show here."""
    model = build_htsat().double()
    model.load_state_dict(htsat_2023.state_dict())
    with torch.no_grad():
        embedding, clipwise = model(torch.from_numpy(golden_2023["audio_logmel"][:1]))
    assert max_error(embedding, golden_2023["audio_embedding_pre_projection"][:1]) < 1e-9
    assert max_error(clipwise, golden_2023["audio_clipwise_output"][:1]) < 1e-9


def test_parity_clapcap():
    golden = parity_golden("clapcap")
    model = build_htsat()
    load_state_dict_strict(model, converted_state("clapcap", "encoder"), "msclap")
    with torch.no_grad():
        embedding, clipwise = model(torch.from_numpy(golden["audio_logmel"]).float())
    assert max_error(embedding, golden["audio_embedding_pre_projection"]) <= \
        parity_atol("clapcap", "audio_embedding_pre_projection")
    assert max_error(clipwise, golden["audio_clipwise_output"]) <= parity_atol("clapcap", "audio_clipwise_output")


def test_waveform_to_projected_embedding(htsat_2023, golden_2023):
    config = get_config("msclap-2023")
    tower = AudioTower(build_frontend(config.audio.frontend), htsat_2023).eval()
    assert torch.allclose(tower.frontend.mel_basis, converted_state("2023", "frontend")["mel_basis"], atol=1e-7)
    projection = Projection(config.audio.out_dim, config.embed_dim, config.projection_dropout).eval()
    projection.load_state_dict(converted_state("2023", "projection"), strict=True)
    with torch.no_grad():
        embedding, _ = tower(torch.from_numpy(parity_inputs("2023")["tiled"]))
        projected = projection(embedding)
    assert max_error(projected, golden_2023["audio_embedding"]) <= parity_atol("2023", "audio_embedding")


def test_clip_output_does_not_depend_on_the_batch(htsat_2023, golden_2023):
    logmel = torch.from_numpy(golden_2023["audio_logmel"]).float()
    with torch.no_grad():
        alone = htsat_2023(logmel[1:2])
        batched = htsat_2023(logmel[[3, 1, 4, 1]])
        again = htsat_2023(logmel[[3, 1, 4, 1]])
    for single, in_batch in zip(alone, batched):
        for row in (1, 3):
            assert ((in_batch[row] - single[0]).abs().max() / single[0].abs().max()).item() <= 1e-5
    assert all(torch.equal(a, b) for a, b in zip(batched, again))


def test_dropout_and_drop_path_are_identities_at_eval(htsat_2023, golden_2023):
    logmel = torch.from_numpy(golden_2023["audio_logmel"][:1]).float()
    noisy = build_htsat(drop_rate=0.3, attn_drop_rate=0.3, drop_path_rate=0.5)
    plain = build_htsat(drop_path_rate=0.0)
    for model in (noisy, plain):
        model.load_state_dict(htsat_2023.state_dict())
    with torch.no_grad():
        reference = htsat_2023(logmel)
        at_eval = noisy(logmel)
        torch.manual_seed(0)
        noisy_training, plain_training = noisy.train()(logmel), plain.train()(logmel)
    assert all(torch.equal(a, b) for a, b in zip(reference, at_eval))
    # The rates do act in training (both models use the same batch statistics in bn0 there).
    assert not torch.allclose(noisy_training[0], plain_training[0], atol=1e-3)


@pytest.mark.parametrize("num_classes", [527, 0])
def test_gradients_reach_every_parameter(golden_2023, num_classes):
    model = build_htsat(num_classes=num_classes).train()
    embedding, clipwise = model(torch.from_numpy(golden_2023["audio_logmel"][:2]).float())
    assert (clipwise is None) == (num_classes == 0)
    (embedding.square().mean() + (clipwise.mean() if num_classes else 0)).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all() and parameter.grad.abs().sum() > 0, name


def test_the_clap_encoder_has_no_classifier():
    names = [name for name, _ in HTSAT(**get_config("msclap-2023").audio.args).named_parameters()]
    assert not any(name.startswith(("tscam_conv", "head")) for name in names)


def test_row_chunking_is_an_inference_option_with_the_same_result(htsat_2023, golden_2023):
    logmel = torch.from_numpy(golden_2023["audio_logmel"][:3]).float()
    with torch.no_grad():
        whole = htsat_2023(logmel)[0]
        with rows_per_pass(4096):
            chunked = htsat_2023(logmel)[0]
        after = htsat_2023(logmel)[0]
    assert torch.allclose(whole, chunked, rtol=1e-5, atol=1e-6) and torch.equal(whole, after)
    assert not hasattr(SwinTransformerBlock, "rows_per_pass")


@pytest.mark.parametrize("shape,cause", [((2, 1, 965, 128), "128"), ((2, 1, 1100, 64), "1100"), ((2, 965, 64), r"\(2, 965, 64\)")])
def test_bad_input_shape_is_a_clear_error(htsat_2023, shape, cause):
    with pytest.raises(ValueError, match=rf"HTSAT input: expected .*got .*{cause}"):
        htsat_2023(torch.zeros(shape))


def test_inconsistent_config_is_rejected():
    with pytest.raises(ValueError, match="spec_size"):
        build_htsat(mel_bins=128)


def test_the_attention_bias_is_computed_once_at_inference_and_again_when_the_weights_change():
    from clapkit.models.htsat import WindowAttention, shifted_window_mask

    torch.manual_seed(0)
    attention = WindowAttention(dim=16, window=4, num_heads=2).eval()
    mask = shifted_window_mask(8, 8, 4, 2)
    x = torch.randn(2, 64, 16)
    with torch.no_grad():
        first = attention(x, mask)
        cached = attention.inference_bias(mask, x.dtype)
        assert attention.inference_bias(mask, x.dtype) is cached  # the same tensor for every clip
        assert torch.equal(cached, attention.attention_bias(mask))
        attention.relative_position_bias_table.add_(1.0)  # e.g. an optimizer step or a weight load
        assert torch.equal(attention.inference_bias(mask, x.dtype), attention.attention_bias(mask))
        assert not torch.equal(attention(x, mask), first)
    with torch.inference_mode():
        assert torch.equal(attention(x, mask), attention(x, mask))
    attention.train()
    x.requires_grad_(True)
    attention(x, mask).sum().backward()  # with gradients the bias is recomputed and the table learns
    assert attention.relative_position_bias_table.grad.abs().sum() > 0
