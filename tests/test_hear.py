"""The HEAR 2021 API and the X-ARES encoder on a tiny model: the specified shapes and dtypes,
timestamps in milliseconds, determinism, odd lengths, and one frame implementation behind both."""
import numpy as np
import pytest
import torch
from search_support import RATE, clip, save_tiny_model
from shared_data import require

import clapkit.hear as hear
from clapkit.errors import UsageError
from clapkit.xares import ClapkitEncoder


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="module")
def model(model_path):
    return hear.load_model(model_path, tokenizer=str(require("tokenizers", "gpt2")))


def audio(n: int, samples: int) -> torch.Tensor:
    return torch.from_numpy(np.stack([np.resize(clip(i % 4, i), samples) for i in range(n)]))


def test_the_model_has_hears_attributes(model):
    assert (model.sample_rate, model.scene_embedding_size, model.timestamp_embedding_size) == (RATE, 16, 16)


@pytest.mark.parametrize("samples", [RATE // 3 + 1, RATE * 2 + 7])  # shorter than the window, and odd
def test_scene_embeddings_shape_dtype_and_determinism(model, samples):
    batch = audio(3, samples)
    first = hear.get_scene_embeddings(batch, model)
    assert first.shape == (3, 16) and first.dtype == torch.float32
    assert torch.equal(first, hear.get_scene_embeddings(batch, model))
    single = hear.get_scene_embeddings(batch[1:2], model)
    torch.testing.assert_close(single[0], first[1], atol=1e-6, rtol=0)  # independent of the batch


def test_timestamp_embeddings_are_frames_every_250_ms(model):
    samples = int(RATE * 1.3) + 5
    embeddings, timestamps = hear.get_timestamp_embeddings(audio(2, samples), model)
    frames = len(range(0, samples, RATE // 4))
    assert embeddings.shape == (2, frames, 16) and timestamps.shape == (2, frames)
    assert timestamps[0].tolist() == pytest.approx([250.0 * k for k in range(frames)])
    assert torch.equal(embeddings, hear.get_timestamp_embeddings(audio(2, samples), model)[0])


def test_bad_input_is_one_line(model):
    with pytest.raises(UsageError, match=r"HEAR expects a \(n_sounds, n_samples\) tensor"):
        hear.get_scene_embeddings(torch.zeros(4), model)


def test_xares_encoder_frames_equal_the_hear_frames_at_its_hop(model_path, model):
    encoder = ClapkitEncoder(model_path, hop_seconds=0.25, tokenizer=str(require("tokenizers", "gpt2")))
    assert (encoder.sampling_rate, encoder.output_dim, encoder.hop_size_in_ms) == (RATE, 16, 250.0)
    batch = audio(2, RATE)
    frames = encoder(batch)
    torch.testing.assert_close(frames, hear.get_timestamp_embeddings(batch, model)[0], atol=1e-6, rtol=0)
    mask = torch.ones_like(batch, dtype=torch.long)
    mask[1, RATE // 2:] = 0
    masked = encoder(batch, mask)
    assert masked.shape == frames.shape and torch.all(masked[1, 2:] == 0)  # the shorter row is zero-padded


@pytest.mark.slow
def test_the_official_hear_validator_passes(model_path, tmp_path):
    """hearvalidator 2021.0.2 (the HEAR organisers' checker), in a side environment; its TensorFlow
    import is stubbed: it only asks whether the model is a tf.Module, and clapkit's is torch."""
    import json
    import subprocess
    from pathlib import Path

    from side_env import side_python

    config = json.loads((Path(model_path) / "config.json").read_text())
    config["text"]["tokenizer"] = str(require("tokenizers", "gpt2"))
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").symlink_to(Path(model_path) / "model.safetensors")
    python = side_python(tmp_path / "venv", no_deps=["hearvalidator==2021.0.2"])
    script = ("import sys, types; tf = types.ModuleType('tensorflow'); tf.Module = type('Module', (), {}); "
              "sys.modules['tensorflow'] = tf; from hearvalidator.validate import ValidateModel; "
              f"ValidateModel('clapkit.hear', {str(folder)!r}, device='cpu')(); print('passed')")
    done = subprocess.run([python, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0 and "passed" in done.stdout, done.stdout[-1500:] + done.stderr[-1500:]
