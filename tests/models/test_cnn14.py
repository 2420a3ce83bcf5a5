"""CNN14 (msclap 2022 audio tower) reproduces msclap's Cnn14 on the synthetic-weight parity fixtures."""
import numpy as np
import pytest
import torch
from parity import msclap_raw_state, parity_atol, parity_golden, parity_inputs

from clapkit.models.clap import AudioTower
from clapkit.models.cnn14 import Cnn14
from clapkit.models.factory import build_frontend, get_config
from clapkit.models.projection import Projection
from clapkit.weights.formats.msclap import convert_msclap_state_dict

BLOCK_OUTPUTS = [f"audio_cnn14_block{i}_chanmean" for i in range(1, 7)]


def with_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return convert_msclap_state_dict(msclap_raw_state("2022"), "msclap-2022", keep_heads=True)


@pytest.fixture(scope="module")
def cnn14(state) -> Cnn14:
    model = Cnn14(**get_config("msclap-2022").audio.args, num_classes=527)  # with the AudioSet head
    model.load_state_dict(with_prefix(state, "audio.encoder."), strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def golden_logmel() -> torch.Tensor:
    return torch.from_numpy(parity_golden("2022")["audio_logmel"]).float()


@pytest.fixture(scope="module")
def outputs(cnn14, golden_logmel) -> dict[str, np.ndarray]:
    """Every compared output for the golden log-mel, block outputs captured by forward hooks."""
    captured = {}
    hooks = [getattr(cnn14, f"conv_block{i}").register_forward_hook(
        lambda module, args, out, name=name: captured.__setitem__(name, out.mean(dim=(2, 3)).numpy()))
        for i, name in enumerate(BLOCK_OUTPUTS, start=1)]
    with torch.inference_mode():
        embedding, clipwise = cnn14(golden_logmel)
    for hook in hooks:
        hook.remove()
    return {**captured, "audio_embedding_pre_projection": embedding.numpy(), "audio_clipwise_output": clipwise.numpy()}


def test_checkpoint_keys_load_strictly(state, cnn14):
    """The ``cnn14`` fixture loads with strict=True; the key sets must also be exactly equal."""
    encoder_state = with_prefix(state, "audio.encoder.")
    assert set(cnn14.state_dict()) == set(encoder_state)
    assert torch.equal(cnn14.conv_block6.conv2.weight, encoder_state["conv_block6.conv2.weight"])


@pytest.mark.parametrize("name", BLOCK_OUTPUTS + ["audio_embedding_pre_projection", "audio_clipwise_output"])
def test_matches_golden_from_logmel(outputs, name):
    golden = parity_golden("2022")[name]
    assert outputs[name].shape == golden.shape
    assert np.abs(outputs[name] - golden).max() <= parity_atol("2022", name)


def test_waveform_to_projected_embedding_matches_golden(state, cnn14):
    tower = AudioTower(build_frontend(get_config("msclap-2022").audio.frontend), cnn14)
    assert torch.allclose(tower.frontend.mel_basis, state["audio.frontend.mel_basis"], atol=1e-7)
    projection = Projection(2048, 1024)
    projection.load_state_dict(with_prefix(state, "audio_projection."), strict=True)
    projection.eval()
    with torch.inference_mode():
        embedding = projection(tower(torch.from_numpy(parity_inputs("2022")["tiled"]))[0])
    golden = parity_golden("2022")["audio_embedding"]
    assert embedding.shape == golden.shape
    assert np.abs(embedding.numpy() - golden).max() <= parity_atol("2022", "audio_embedding")


def test_clip_alone_matches_clip_in_batch(cnn14, golden_logmel, outputs):
    with torch.inference_mode():
        embedding, clipwise = cnn14(golden_logmel[1:2])
    for alone, batched in ((embedding, outputs["audio_embedding_pre_projection"][1:2]),
                           (clipwise, outputs["audio_clipwise_output"][1:2])):
        assert np.abs(alone.numpy() - batched).max() <= 1e-5 * np.abs(batched).max()


@pytest.mark.parametrize("shape", [(2, 100, 64), (2, 1, 100, 32), (2, 1, 31, 64)])
def test_rejects_malformed_logmel(shape):
    with pytest.raises(ValueError, match="Cnn14 input"):
        Cnn14()(torch.zeros(shape))


def test_the_clap_encoder_has_no_audioset_head():
    model = Cnn14(**get_config("msclap-2022").audio.args)
    assert model.fc_audioset is None
    embedding, clipwise = model.eval()(torch.zeros(1, 1, 64, 64))
    assert clipwise is None and embedding.shape == (1, 2048)
