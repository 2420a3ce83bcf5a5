"""LAION-CLAP ``.pt`` checkpoints (``{"state_dict": {"module.audio_branch...": ...}}``, as LAION's
training saves them) load onto the built-in LAION configs and give exactly the embeddings of the same
weights as a Hugging Face folder; what LAION carries but clapkit does not build is dropped by name."""
import numpy as np
import pytest
import torch
from hf_clap import save_hf_clap, save_laion_pt

import clapkit
from clapkit.errors import WeightsError
from clapkit.weights.formats.laion import convert_laion_state_dict, detect_laion_variant
from clapkit.weights.loading import read_state_dict

RATE = 48000


def derived_buffers(model) -> dict:
    return dict(model.named_buffers())


@pytest.fixture(scope="module")
def roberta_base_folder(tmp_path_factory):
    """As the default ClapConfig, but with roberta-base's LayerNorm epsilon (1e-5), which LAION's
    RoBERTa has (transformers' ClapTextConfig defaults to 1e-12)."""
    return save_hf_clap(tmp_path_factory.mktemp("hf") / "laion-like", text_settings={"layer_norm_eps": 1e-5})


@pytest.fixture(scope="module")
def unfused_pair(roberta_base_folder, tmp_path_factory):
    from_folder = clapkit.load(roberta_base_folder)
    pt = save_laion_pt(tmp_path_factory.mktemp("laion") / "630k-best.pt", roberta_base_folder,
                       derived_buffers(from_folder.model))
    return from_folder, pt


def test_a_laion_checkpoint_is_recognised_by_its_keys(unfused_pair, hf_clap_fused_folder, tmp_path):
    _, pt = unfused_pair
    assert detect_laion_variant(read_state_dict(pt)) == "laion-htsat-tiny"
    fused_pt = save_laion_pt(tmp_path / "fusion.pt", hf_clap_fused_folder,
                             derived_buffers(clapkit.load(hf_clap_fused_folder).model))
    assert detect_laion_variant(read_state_dict(fused_pt)) == "laion-htsat-tiny-fusion"


def test_it_gives_the_hugging_face_folders_embeddings_exactly(unfused_pair, roberta_base_folder):
    from_folder, pt = unfused_pair
    from_pt = clapkit.load(pt, tokenizer=str(roberta_base_folder))
    assert from_pt.config.name == "laion-htsat-tiny"
    wave = (0.2 * np.sin(np.arange(3 * RATE) * 0.03)).astype(np.float32)
    assert torch.equal(from_pt.embed_audio(wave, sample_rate=RATE), from_folder.embed_audio(wave, sample_rate=RATE))
    texts = ["a dog barks", "a car passes by"]
    assert torch.equal(from_pt.embed_text(texts), from_folder.embed_text(texts))


def test_only_what_clapkit_does_not_build_is_dropped(unfused_pair):
    _, pt = unfused_pair
    converted = convert_laion_state_dict(read_state_dict(pt))
    assert not any(k.startswith(("module.", "audio_branch.", "text_branch.")) for k in converted)
    assert not any("tscam_conv" in k or "logmel_extractor" in k or "_transform." in k for k in converted)
    assert converted["logit_scale"].shape == (1,) and "logit_scale_text" in converted
    assert "audio.encoder.layers.0.blocks.1.attn_mask" in converted  # kept: the loader checks it


def test_a_changed_attention_mask_is_refused(unfused_pair, tmp_path):
    _, pt = unfused_pair
    checkpoint = torch.load(pt, weights_only=True)
    checkpoint["state_dict"]["module.audio_branch.layers.0.blocks.1.attn_mask"] *= 2
    torch.save(checkpoint, tmp_path / "bad.pt")
    with pytest.raises(WeightsError, match="attn_mask differs from the one this model config derives"):
        clapkit.load(tmp_path / "bad.pt")


def test_a_checkpoint_without_a_roberta_branch_is_named(tmp_path):
    torch.save({"state_dict": {"module.audio_branch.patch_embed.proj.weight": torch.zeros(96, 1, 4, 4)}}, tmp_path / "x.pt")
    with pytest.raises(WeightsError, match="RoBERTa text branch was expected"):
        clapkit.load(tmp_path / "x.pt")
