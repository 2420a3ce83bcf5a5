"""``clapkit convert`` writes any supported checkpoint as a clapkit folder (safetensors + config.json
+ its tokenizer) that loads offline to the same embeddings, bit for bit, and converts again to the
same bytes; the folder appears whole or not at all."""
import numpy as np
import pytest
import torch
from hf_clap import save_hf_clap

import clapkit
from clapkit.cli import main
from clapkit.errors import UsageError
from clapkit.weights.convert import convert_checkpoint


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return save_hf_clap(tmp_path_factory.mktemp("hf") / "tiny-clap", tiny=True, fusion=True)


def test_a_converted_folder_gives_the_same_embeddings(tiny_folder, tmp_path):
    out, config = convert_checkpoint(tiny_folder, tmp_path / "converted")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "tokenizer"]
    assert config.text.tokenizer == "tokenizer" and config.audio.fusion
    original, converted = clapkit.load(tiny_folder), clapkit.load(out)
    wave = np.sin(np.arange(48000 * 14) * 0.01).astype(np.float32)  # longer than the window: fusion
    assert torch.equal(original.embed_audio(wave, sample_rate=48000), converted.embed_audio(wave, sample_rate=48000))
    assert torch.equal(original.embed_text(["a bell rings"]), converted.embed_text(["a bell rings"]))


def test_converting_a_converted_folder_round_trips_to_the_same_bytes(tiny_folder, tmp_path):
    first, _ = convert_checkpoint(tiny_folder, tmp_path / "first")
    second, _ = convert_checkpoint(first, tmp_path / "second")
    assert (first / "model.safetensors").read_bytes() == (second / "model.safetensors").read_bytes()
    assert (first / "config.json").read_text() == (second / "config.json").read_text()


def test_an_occupied_out_is_refused_and_left_alone(tiny_folder, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    with pytest.raises(UsageError, match="already exists and is not an empty folder"):
        convert_checkpoint(tiny_folder, tmp_path / "taken")
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["keep.txt"]


def test_the_command_converts_and_checks(tiny_folder, tmp_path, capsys):
    assert main(["convert", str(tiny_folder), "--out", str(tmp_path / "cli"), "--check"]) == 0
    assert "embeddings equal the source's" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2
    assert "no such checkpoint file" in capsys.readouterr().err
