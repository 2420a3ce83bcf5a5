"""Checkpoint loading: msclap .pth files are recognised, mapped and checked strictly; clapkit's own
format round-trips; a missing release gives one line saying what to get and where."""
import pytest
import torch

from clapkit.models.factory import create_model
from clapkit.weights.loading import WeightsError, fetch, load_checkpoint, read_state_dict, save_pretrained
from clapkit.weights.msclap import convert_msclap_state_dict, detect_msclap_variant
from clapkit.weights.registry import PRETRAINED
from parity import msclap_raw_state

VERSIONS = {"2023": "msclap-2023", "2022": "msclap-2022", "clapcap": "msclap-clapcap"}


@pytest.mark.parametrize("version", VERSIONS)
def test_msclap_variant_is_detected_from_keys(version):
    assert detect_msclap_variant(msclap_raw_state(version)) == VERSIONS[version]


@pytest.mark.parametrize("version", VERSIONS)
def test_released_layout_loads_strictly(version, tmp_path):
    path = tmp_path / "weights.pth"
    torch.save({"model": msclap_raw_state(version), "epoch": 1}, path)
    model, config = load_checkpoint(path)
    assert config["name"] == VERSIONS[version]
    state = model.state_dict()
    converted = convert_msclap_state_dict(msclap_raw_state(version), VERSIONS[version])
    assert set(state) == set(converted)
    for key, value in converted.items():
        assert torch.equal(state[key], value.to(state[key].dtype)), key


def test_legacy_buffers_are_dropped_and_index_buffers_cast():
    raw = msclap_raw_state("2023")
    converted = convert_msclap_state_dict(raw, "msclap-2023")
    assert not any(k.endswith((".attn.bias", ".attn.masked_bias")) for k in converted)
    assert sum(k.endswith((".attn.bias", ".attn.masked_bias")) for k in raw) == 24
    index = [k for k in converted if k.endswith("relative_position_index")]
    assert index and all(converted[k].dtype == torch.int64 for k in index)


def test_strict_check_names_every_missing_and_unexpected_key(tmp_path):
    raw = dict(msclap_raw_state("2023"))
    del raw["audio_encoder.projection.linear1.weight"]
    raw["audio_encoder.base.htsat.extra.weight"] = torch.zeros(1)
    path = tmp_path / "broken.pth"
    torch.save({"model": raw}, path)
    with pytest.raises(WeightsError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert "audio_projection.linear1.weight" in message and "audio.encoder.extra.weight" in message
    assert "\n" not in message


def test_not_a_checkpoint_is_one_clear_line(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("hello")
    with pytest.raises(WeightsError, match="notes.pth: not a readable checkpoint"):
        read_state_dict(path)
    with pytest.raises(WeightsError, match="no such checkpoint file"):
        read_state_dict(tmp_path / "absent.pth")


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "hook": print}, path)
    with pytest.raises(WeightsError, match="evil.pth"):
        read_state_dict(path)


def test_clapkit_format_round_trips(tmp_path):
    model, config = load_checkpoint_from_raw("clapcap", tmp_path)
    save_pretrained(model, config, tmp_path / "saved")
    again, again_config = load_checkpoint(tmp_path / "saved")
    assert again_config == config
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key


def load_checkpoint_from_raw(version, tmp_path):
    path = tmp_path / f"{version}.pth"
    torch.save({"model": msclap_raw_state(version)}, path)
    return load_checkpoint(path)


def test_missing_release_offline_says_what_to_get(monkeypatch, tmp_path):
    monkeypatch.setenv("CLAPKIT_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(WeightsError) as err:
        fetch(PRETRAINED["msclap-2023"])
    message = str(err.value)
    assert "CLAP_weights_2023.pth" in message and str(tmp_path) in message and "\n" not in message


def test_release_in_cache_dir_is_found_without_network(monkeypatch, tmp_path):
    monkeypatch.setenv("CLAPKIT_HOME", str(tmp_path))
    (tmp_path / "CLAP_weights_2022.pth").write_bytes(b"x")
    assert fetch(PRETRAINED["msclap-2022"]) == tmp_path / "CLAP_weights_2022.pth"


def test_unknown_architecture_needs_a_variant(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"w": torch.zeros(2)}, path)
    with pytest.raises(WeightsError, match="pass variant="):
        load_checkpoint(path)
