"""LAION / Hugging Face CLAP models fine-tune with ``clapkit train --pretrained FOLDER``: both logit
scales learn, the clip-length training windows leave a fusion model's fusion layers as they were,
and the run folder loads like any clapkit model."""
from __future__ import annotations

import pytest
import torch
from hf_clap import save_hf_clap
from safetensors.torch import load_file
from tiny import write_corpus

import clapkit
from clapkit.train.main import main
from clapkit.weights.loading import load_checkpoint


@pytest.fixture(scope="module")
def fused_folder(tmp_path_factory):
    return save_hf_clap(tmp_path_factory.mktemp("hf") / "tiny-fused", tiny=True, fusion=True)


def test_a_fusion_model_fine_tunes_and_loads(fused_folder, tmp_path):
    train = write_corpus(tmp_path / "train", per_label=2)
    run = tmp_path / "run"
    assert main(["--pretrained", str(fused_folder), "--train", train, "--out", str(run), "--steps", "2",
                 "--batch-size", "4", "--lr", "1e-3", "--log-every", "1"]) == 0
    start = load_checkpoint(fused_folder)[0].state_dict()
    tuned = load_file(run / "model.safetensors")
    changed = {k for k in start if start[k].is_floating_point() and not torch.equal(start[k], tuned[k])}
    assert {"logit_scale", "logit_scale_text", "audio_projection.linear1.weight", "text.encoder.pooler.dense.weight"} <= changed
    assert not any("fusion_model" in k or "mel_conv2d" in k for k in changed)
    model = clapkit.load(run)
    assert model.policy == "fusion" and model.embed_text(["a low hum"]).shape == (1, 24)
