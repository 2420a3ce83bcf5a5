"""Against LAION-CLAP's own model code: ``laion_clap`` 1.1.7, installed in a side environment (it pins
numpy<2 and imports torchvision, so it cannot share clapkit's), builds its CLAP with random weights
and saves a ``.pt`` the way its training does; clapkit loads that file and must give the same text
and audio embeddings: waveforms through LAION's torchlibrosa front end (unfused) and fusion mels
through its AFF (fusion). Slow: it creates the environment from PyPI."""
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from side_env import side_python

from clapkit.weights.loading import load_checkpoint

pytestmark = pytest.mark.slow
PACKAGES_NO_DEPS = ["laion-clap==1.1.7", "torchlibrosa==0.1.0"]
PACKAGES = ["librosa", "ftfy", "braceexpand", "h5py", "wget"]  # what its model modules import


@pytest.fixture(scope="module")
def laion_python(tmp_path_factory) -> str:
    return side_python(tmp_path_factory.mktemp("laionenv") / "venv", no_deps=PACKAGES_NO_DEPS, with_deps=PACKAGES)


def laion_reference(python: str, folder: Path, kind: str) -> dict:
    script = Path(__file__).with_name("laion_reference.py")
    done = subprocess.run([python, str(script), str(folder), kind], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(np.load(folder / "reference.npz"))


@pytest.mark.parametrize("kind,config", [("unfused", "laion-htsat-tiny"), ("fusion", "laion-htsat-tiny-fusion")])
def test_laion_checkpoints_give_laion_clap_s_own_embeddings(laion_python, tmp_path, kind, config):
    reference = laion_reference(laion_python, tmp_path, kind)
    model, loaded = load_checkpoint(tmp_path / "laion.pt")
    assert loaded.name == config
    with torch.inference_mode():
        text = model.encode_text(torch.from_numpy(reference["ids"]), torch.from_numpy(reference["mask"]), normalize=True)
        if kind == "fusion":
            embedding, _ = model.audio.encoder(torch.from_numpy(reference["mel_fusion"]),
                                               torch.from_numpy(reference["longer"][:, 0]))
            audio = F.normalize(model.audio_projection(embedding), dim=-1)
        else:
            audio = model.encode_audio(torch.from_numpy(reference["waveform"]), normalize=True)
    assert (text - torch.from_numpy(reference["text"])).abs().max() < 1e-4
    assert (audio - torch.from_numpy(reference["audio"])).abs().max() < 1e-4
    assert np.abs(reference["audio"][0] - reference["audio"][1]).max() > 1e-3  # the clips are told apart
