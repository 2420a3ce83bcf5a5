"""Slim checkpoints: a text encoder equal to its declared init (clapkit-small's MiniLM, from its
pinned package) is left out on saving and read back from the package on loading, bit for bit."""
from __future__ import annotations

import pytest
import torch
from safetensors import safe_open

from clapkit.models.factory import create_model, get_config
from clapkit.weights.formats.hf_text import init_folder, load_text_encoder
from clapkit.weights.loading import (
    WeightsError,
    load_checkpoint,
    load_state_dict_strict,
    save_pretrained,
)


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    config = get_config("clapkit-small")
    model = create_model(config).eval()
    state = load_text_encoder(init_folder(config.text.init), config.text, config.text.init.sha256)
    load_state_dict_strict(model.text.encoder, state, "minilm")
    return model, config


def test_slim_file_holds_only_what_differs_from_the_init(small, tmp_path):
    model, config = small
    save_pretrained(model, config, tmp_path / "slim", slim_text=True)
    save_pretrained(model, config, tmp_path / "full")
    with safe_open(str(tmp_path / "slim" / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert keys and not any(k.startswith("text.encoder.") for k in keys)
    assert any(k.startswith("text_projection.") for k in keys) and any(k.startswith("audio.") for k in keys)
    slim_size = (tmp_path / "slim" / "model.safetensors").stat().st_size
    assert slim_size < 25e6 < (tmp_path / "full" / "model.safetensors").stat().st_size


def test_slim_checkpoint_loads_back_bit_for_bit(small, tmp_path):
    model, config = small
    save_pretrained(model, config, tmp_path / "slim", slim_text=True)
    loaded, _ = load_checkpoint(tmp_path / "slim")
    expected = model.state_dict()
    got = loaded.state_dict()
    assert set(got) == set(expected)
    assert all(torch.equal(got[k], expected[k]) for k in expected)


def test_a_trained_text_encoder_cannot_be_left_out(small, tmp_path):
    model, config = small
    changed = create_model(config).eval()
    changed.load_state_dict(model.state_dict())
    with torch.no_grad():
        changed.text.encoder.embeddings.word_embeddings.weight[0, 0] += 1.0
    with pytest.raises(WeightsError, match="differs from its init .*word_embeddings"):
        save_pretrained(changed, config, tmp_path / "slim", slim_text=True)


def test_an_audio_only_load_does_not_read_the_text_package(small, tmp_path, monkeypatch):
    model, config = small
    save_pretrained(model, config, tmp_path / "slim", slim_text=True)

    def refuse(config):
        raise AssertionError("the text encoder was read for an audio-only load")

    monkeypatch.setattr("clapkit.weights.loading._init_text_encoder", refuse)
    audio_model, audio_config = load_checkpoint(tmp_path / "slim", audio_only_model=True)
    assert audio_config.text is None and audio_model.text is None
    expected = model.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in audio_model.state_dict().items())
