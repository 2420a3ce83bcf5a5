"""``clapkit export --onnx``: the encoders as ONNX graphs that onnxruntime runs behind the same
pipeline, within 1e-4 of the torch model in float32; the int8 audio graph stays close in cosine."""
import json

import numpy as np
import pytest
import torch
from hf_clap import save_hf_clap

import clapkit
from clapkit.cli import main
from clapkit.errors import WeightsError
from clapkit.weights.convert import export_checkpoint

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return save_hf_clap(tmp_path_factory.mktemp("hf") / "tiny-clap", tiny=True, fusion=False)


@pytest.fixture(scope="module")
def exported(tiny_folder, tmp_path_factory):
    out, _ = export_checkpoint(tiny_folder, tmp_path_factory.mktemp("onnx") / "export", int8=True)
    return out


def test_the_export_holds_both_graphs_the_scale_and_the_tokenizer(exported, tiny_folder):
    assert sorted(p.name for p in exported.iterdir()) == ["audio.int8.onnx", "audio.onnx", "config.json", "text.onnx",
                                                          "tokenizer"]
    entry = json.loads((exported / "config.json").read_text())["onnx"]
    assert entry["logit_scale"] == pytest.approx(clapkit.load(tiny_folder).model.logit_scale.item())


def test_onnxruntime_gives_the_torch_embeddings(exported, tiny_folder):
    original, onnx = clapkit.load(tiny_folder), clapkit.load(exported)
    rng = np.random.default_rng(0)
    clips = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (12000, 48000 * 3, 30000)]  # 1 to 3 windows
    a = original.embed_audio(clips, sample_rate=48000, normalize=False)
    b = onnx.embed_audio(clips, sample_rate=48000, normalize=False)
    assert (a - b).abs().max() <= 1e-4
    texts = ["a dog barks", "rain on a tin roof, then thunder far away"]  # two lengths: the length axis is dynamic
    assert (original.embed_text(texts, normalize=False) - onnx.embed_text(texts, normalize=False)).abs().max() <= 1e-4
    decision = original.classify(clips, sample_rate=48000, labels=["dog", "rain"]).top(1)
    assert onnx.classify(clips, sample_rate=48000, labels=["dog", "rain"]).top(1)[0][0][0] == decision[0][0][0]


def test_the_int8_audio_graph_stays_close(exported, tiny_folder):
    """On this tiny random model a pure tone moves most (cosine 0.975 measured); the shipped model's
    figures are in benchmarks/bench_onnx.py."""
    rng = np.random.default_rng(0)
    clips = [np.sin(np.arange(48000) * 0.03).astype(np.float32), (0.1 * rng.standard_normal(96000)).astype(np.float32)]
    a = clapkit.load(tiny_folder).embed_audio(clips, sample_rate=48000)
    b = clapkit.load(exported, dtype="int8").embed_audio(clips, sample_rate=48000)
    cosine = torch.nn.functional.cosine_similarity(a, b)
    assert cosine.min() >= 0.95 and not torch.equal(a, b)


def test_cli_export_checks_and_refuses_what_it_cannot_export(tiny_folder, tmp_path, capsys):
    assert main(["export", str(tiny_folder), "--onnx", str(tmp_path / "x"), "--check"]) == 0
    assert "audio float32 max |diff|" in capsys.readouterr().err
    fused = save_hf_clap(tmp_path / "fused", tiny=True, fusion=True)
    with pytest.raises(WeightsError, match="fusion"):
        export_checkpoint(fused, tmp_path / "y")
    assert main(["export", str(tiny_folder), "--onnx", str(tmp_path / "x")]) == 2  # occupied
