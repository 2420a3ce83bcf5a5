"""Hugging Face ClapModel folders load with ``clapkit.load(folder)`` and give transformers' own
``get_text_features`` / ``get_audio_features`` (its ClapFeatureExtractor in front) within 1e-4, for
clips shorter than and as long as the window, and, for a fusion model, for long clips with the
crop positions fixed on both sides. The feature settings come from the folder."""
import functools
import json

import numpy as np
import pytest
import torch
from hf_clap import save_hf_clap

import clapkit
from clapkit.errors import WeightsError
from clapkit.models.clap import fusion_starts

RATE = 48000
TOLERANCE = 1e-4


def clip(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(RATE * seconds)) / RATE
    return (0.3 * np.sin(2 * np.pi * (220 + 40 * seed) * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


@functools.lru_cache(maxsize=2)
def reference(folder):
    """transformers' model, feature extractor and tokenizer for a folder."""
    from transformers import AutoTokenizer, ClapFeatureExtractor, ClapModel

    return (ClapModel.from_pretrained(folder).eval(), ClapFeatureExtractor.from_pretrained(folder),
            AutoTokenizer.from_pretrained(folder))


def transformers_audio(folder, wave: np.ndarray, monkeypatch=None) -> torch.Tensor:
    """transformers' pipeline; for a fusion model, its random crops replaced by clapkit's fixed ones
    and ``is_longer`` set from the length (its extractor marks a random short clip as longer)."""
    model, extractor, _ = reference(folder)
    frames = len(wave) // extractor.hop_length + 1
    window_frames = extractor.nb_max_samples // extractor.hop_length + 1
    if monkeypatch is not None:
        starts = list(fusion_starts(frames, window_frames))
        monkeypatch.setattr(np.random, "choice", lambda choices, *a, **k: starts.pop(0))
    features = extractor([wave], sampling_rate=RATE, return_tensors="pt")
    if monkeypatch is not None:
        monkeypatch.undo()
        features["is_longer"] = torch.tensor([[frames > window_frames]])
    with torch.inference_mode():
        return model.get_audio_features(**features).pooler_output


def transformers_text(folder, texts: list[str]) -> torch.Tensor:
    model, _, tokenizer = reference(folder)
    tokens = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        return model.get_text_features(**tokens).pooler_output


@pytest.fixture(scope="module")
def unfused(hf_clap_folder):
    return clapkit.load(hf_clap_folder)


@pytest.fixture(scope="module")
def fused(hf_clap_fused_folder):
    return clapkit.load(hf_clap_fused_folder)


def test_the_folder_config_becomes_a_clapkit_config(unfused):
    config = unfused.config
    assert (config.audio.arch, config.text.arch, config.embed_dim) == ("htsat", "roberta", 512)
    assert config.audio.args["depths"] == [2, 2, 6, 2] and config.text.args["num_hidden_layers"] == 12
    frontend = config.audio.frontend
    assert (frontend.sample_rate, frontend.hop_length, frontend.clip_seconds, frontend.short_clip) == (48000, 480, 10, "repeatpad")
    assert (frontend.mel_scale, frontend.mel_norm) == ("slaney", "slaney")  # rand_trunc's bank
    assert (config.projection, config.text_logit_scale, config.audio.fusion) == ("mlp", True, False)


def test_text_embeddings_match_transformers(unfused, hf_clap_folder):
    texts = ["a dog barks", "rain on a tin roof while thunder rolls far away", "music"]
    ours, theirs = unfused.embed_text(texts), transformers_text(hf_clap_folder, texts)
    assert (ours - theirs).abs().max() < TOLERANCE
    assert (theirs[0] - theirs[1]).abs().max() > 100 * TOLERANCE  # the texts are told apart


@pytest.mark.parametrize("seconds", [3.0, 10.0])
def test_audio_embeddings_match_transformers_up_to_the_window(unfused, hf_clap_folder, seconds):
    wave = clip(seconds)
    ours, theirs = unfused.embed_audio(wave, sample_rate=RATE), transformers_audio(hf_clap_folder, wave)
    assert (ours - theirs).abs().max() < TOLERANCE
    other = transformers_audio(hf_clap_folder, clip(seconds, seed=1))
    assert (theirs - other).abs().max() > 100 * TOLERANCE


def test_logit_scales_are_the_folders(unfused):
    assert unfused.model.logit_scale.item() == pytest.approx(2.0)
    assert unfused.model.logit_scale_text.item() == pytest.approx(2.5)


@pytest.mark.parametrize("seconds", [3.0, 10.0, 25.3])
def test_a_fusion_model_matches_transformers_with_crops_fixed(fused, hf_clap_fused_folder, monkeypatch, seconds):
    wave = clip(seconds)
    ours = fused.embed_audio(wave, sample_rate=RATE)
    theirs = transformers_audio(hf_clap_fused_folder, wave, monkeypatch)
    assert (ours - theirs).abs().max() < TOLERANCE


def test_fusion_is_used_for_long_clips_and_is_deterministic(fused, hf_clap_fused_folder):
    assert fused.policy == "fusion" and fused.config.audio.frontend.mel_scale == "htk"
    wave = clip(25.3)
    first, again = fused.embed_audio(wave, sample_rate=RATE), fused.embed_audio(wave, sample_rate=RATE)
    assert torch.equal(first, again)
    windows = clapkit.load(hf_clap_fused_folder, policy="start").embed_audio(wave, sample_rate=RATE)
    assert (first - windows).abs().max() > 100 * TOLERANCE  # the fused input is not just the first window


def test_the_feature_settings_are_read_from_the_folder(tmp_path):
    folder = save_hf_clap(tmp_path / "pad", tiny=True, padding="pad", frequency_max=9000, hop_length=400,
                          max_length_s=8)
    model = clapkit.load(folder)
    frontend = model.config.audio.frontend
    assert (frontend.short_clip, frontend.fmax, frontend.hop_length, frontend.clip_seconds) == ("pad", 9000, 400, 8)
    wave = clip(2.5)
    assert (model.embed_audio(wave, sample_rate=RATE) - transformers_audio(folder, wave)).abs().max() < TOLERANCE


def test_a_pytorch_model_bin_folder_loads_the_same(tmp_path):
    safetensors = clapkit.load(save_hf_clap(tmp_path / "st", tiny=True))
    torch_file = clapkit.load(save_hf_clap(tmp_path / "bin", tiny=True, safetensors=False))
    assert (tmp_path / "bin" / "pytorch_model.bin").is_file()
    wave = clip(1.0)
    assert torch.equal(safetensors.embed_audio(wave, sample_rate=RATE), torch_file.embed_audio(wave, sample_rate=RATE))


def test_unsupported_settings_are_refused_in_one_line(tmp_path):
    folder = save_hf_clap(tmp_path / "db", tiny=True, top_db=80)
    with pytest.raises(WeightsError, match="top_db=80") as error:
        clapkit.load(folder)
    assert "\n" not in str(error.value)


def test_a_broken_preprocessor_config_is_named(tmp_path):
    folder = save_hf_clap(tmp_path / "broken", tiny=True)
    (folder / "preprocessor_config.json").write_text("{not json")
    with pytest.raises(WeightsError, match="preprocessor_config.json: the feature-extractor config is not valid JSON"):
        clapkit.load(folder)


def test_fusion_policy_needs_a_fusion_model(hf_clap_folder):
    with pytest.raises(clapkit.ClapkitError, match="has no feature fusion"):
        clapkit.load(hf_clap_folder, policy="fusion")
    assert json.loads((hf_clap_folder / "config.json").read_text())["model_type"] == "clap"
