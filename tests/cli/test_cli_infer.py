"""The ``clapkit`` command: classify/embed over files and folders, failures listed at the end with a
non-zero exit, JSON lines, and one-line errors for set-up mistakes."""
import json

import numpy as np
import pytest
import soundfile as sf

from clapkit.cli import main


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(0)
    (folder / "sub").mkdir()
    sf.write(folder / "a.wav", rng.standard_normal(44100).astype(np.float32) * 0.1, 44100)
    sf.write(folder / "sub" / "b.flac", rng.standard_normal((32000, 2)).astype(np.float32) * 0.1, 32000)
    (folder / "notes.txt").write_text("not audio, and not picked up from a folder")
    return folder


@pytest.fixture(scope="module")
def model_args(msclap_checkpoint, shared_dir):
    return ["--model", str(msclap_checkpoint("2023")), "--tokenizer", str(shared_dir / "tokenizers" / "gpt2")]


def test_classify_folder_prints_one_json_line_per_file(audio_dir, model_args, capsys):
    assert main(["classify", str(audio_dir), "--labels", "dog,rain,bell", "--top", "2", "--json", *model_args]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["file"] for line in lines] == [str(audio_dir / "a.wav"), str(audio_dir / "sub" / "b.flac")]
    for line in lines:
        assert len(line["top"]) == 2 and line["top"][0]["prob"] >= line["top"][1]["prob"]


def test_classify_goes_on_past_bad_files_and_exits_non_zero(audio_dir, model_args, tmp_path, capsys):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    code = main(["classify", str(tmp_path / "missing.wav"), str(empty), str(audio_dir / "a.wav"), "--labels", "dog,rain", *model_args])
    out, err = capsys.readouterr()
    assert code == 1
    assert str(audio_dir / "a.wav") in out
    assert "missing.wav" in err and "empty.wav" in err and "2 input(s) failed" in err
    assert "Traceback" not in err


def test_embed_writes_audio_and_text_embeddings(audio_dir, model_args, tmp_path):
    out = tmp_path / "emb.npz"
    assert main(["embed", str(audio_dir), "--text", "a dog barks", "--text", "rain", "--out", str(out), *model_args]) == 0
    data = np.load(out)
    assert data["audio"].shape == (2, 1024) and data["text"].shape == (2, 1024)
    assert np.allclose(np.linalg.norm(data["audio"], axis=1), 1, atol=1e-5)
    assert list(data["texts"]) == ["a dog barks", "rain"]


def test_unknown_model_is_one_line_error(audio_dir, capsys):
    assert main(["classify", str(audio_dir), "--labels", "dog", "--model", "no-such-model"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no-such-model" in err


def test_models_lists_the_registry(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("CLAPKIT_HOME", str(tmp_path))
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("msclap-2023", "msclap-2022", "msclap-clapcap"):
        assert name in out
    assert "CLAP_weights_2023.pth" in out


@pytest.mark.slow
def test_caption_prints_one_caption_per_file(audio_dir, msclap_checkpoint, shared_dir, capsys):
    args = ["--model", str(msclap_checkpoint("clapcap")), "--tokenizer", str(shared_dir / "tokenizers" / "gpt2")]
    assert main(["caption", str(audio_dir / "a.wav"), "--json", *args]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["file"] == str(audio_dir / "a.wav") and line["caption"]
