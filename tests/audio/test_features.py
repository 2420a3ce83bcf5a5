"""The log-mel front end reproduces msclap's torchlibrosa features."""
import numpy as np
import pytest
import torch
from parity import msclap_raw_state, parity_atol, parity_golden, parity_inputs

from clapkit.audio.features import LogMel, mel_filterbank

MEL_KEY = {"2023": "audio_encoder.base.htsat.logmel_extractor.melW", "2022": "audio_encoder.base.logmel_extractor.melW",
           "clapcap": "clap.base.htsat.logmel_extractor.melW"}


@pytest.mark.parametrize("version,mel_rate", [("2023", 32000), ("2022", 44100), ("clapcap", 32000)])
def test_filterbank_matches_the_checkpoint_bank(version, mel_rate):
    bank = mel_filterbank(mel_rate, 1024, 64, 50, 14000)
    np.testing.assert_allclose(bank, msclap_raw_state(version)[MEL_KEY[version]].numpy(), atol=1e-7)


@pytest.mark.parametrize("version", ["2023", "2022", "clapcap"])
def test_logmel_matches_golden(version):
    frontend = LogMel(mel_sample_rate=44100)
    frontend.mel_basis.copy_(msclap_raw_state(version)[MEL_KEY[version]])
    with torch.no_grad():
        logmel = frontend(torch.from_numpy(parity_inputs(version)["tiled"]))
    golden = parity_golden(version)["audio_logmel"]
    assert logmel.shape == golden.shape
    assert np.abs(logmel.numpy() - golden).max() <= parity_atol(version, "audio_logmel")


@pytest.mark.parametrize("scale,norm", [("slaney", "slaney"), ("htk", None)])
def test_filterbanks_match_transformers(scale, norm):
    """Both banks CLAP models use: librosa's Slaney (msclap, LAION unfused) and torchaudio's HTK
    without norm (LAION fusion), as transformers' ClapFeatureExtractor builds them."""
    from transformers.audio_utils import mel_filter_bank

    theirs = mel_filter_bank(num_frequency_bins=513, num_mel_filters=64, min_frequency=50, max_frequency=14000,
                             sampling_rate=48000, norm=norm, mel_scale=scale)
    ours = mel_filterbank(48000, 1024, 64, 50, 14000, scale=scale, norm=norm)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-7)
