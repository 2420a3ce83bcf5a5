"""Checkpoint loading: msclap .pth files are recognised, mapped and checked strictly; clapkit's own
format round-trips; a missing release gives one line saying what to get and where."""
import os

import pytest
import torch
from parity import msclap_raw_state

from clapkit.models.factory import create_model, get_config
from clapkit.weights.formats.msclap import (
    convert_msclap_state_dict,
    detect_msclap_variant,
)
from clapkit.weights.loading import (
    WeightsError,
    fetch,
    load_checkpoint,
    read_state_dict,
    save_pretrained,
    tied_groups,
)
from clapkit.weights.registry import PRETRAINED

VERSIONS = {"2023": "msclap-2023", "2022": "msclap-2022", "clapcap": "msclap-clapcap"}


@pytest.mark.parametrize("version", VERSIONS)
def test_msclap_variant_is_detected_from_keys(version):
    assert detect_msclap_variant(msclap_raw_state(version)) == VERSIONS[version]


@pytest.mark.parametrize("version", VERSIONS)
def test_released_layout_loads_strictly(version, tmp_path):
    path = tmp_path / "weights.pth"
    torch.save({"model": msclap_raw_state(version), "epoch": 1}, path)
    model, config = load_checkpoint(path)
    assert config.name == VERSIONS[version]
    state = model.state_dict()
    derived = dict(model.named_buffers())  # mel bank, position indices, masks: computed, not loaded
    converted = convert_msclap_state_dict(msclap_raw_state(version), VERSIONS[version])
    assert set(state) == set(converted) - {k for k in converted if k not in state and k in derived}
    for key, value in converted.items():
        ours = state[key] if key in state else derived[key]
        assert torch.allclose(ours, value.to(ours.dtype), rtol=1e-4, atol=1e-6), key


@pytest.mark.parametrize("version", VERSIONS)
def test_unused_heads_are_dropped_by_name_and_not_built(version):
    raw = msclap_raw_state(version)
    converted = convert_msclap_state_dict(raw, VERSIONS[version])
    heads = [k for k in raw if any(h in k for h in ("tscam_conv", ".head.", "fc_audioset", "pooler"))]
    assert heads and not any(any(h in k for h in ("tscam_conv", ".head.", "fc_audioset", "pooler")) for k in converted)
    model = create_model(VERSIONS[version])
    heads = ("encoder.tscam_conv.", "encoder.head.", "encoder.fc_audioset.", "encoder.pooler.")
    assert not any(head in k for k in model.state_dict() for head in heads)


def test_derived_buffer_that_differs_is_refused(tmp_path):
    raw = dict(msclap_raw_state("2023"))
    raw["audio_encoder.base.htsat.logmel_extractor.melW"] = raw["audio_encoder.base.htsat.logmel_extractor.melW"] * 2
    path = tmp_path / "other-bank.pth"
    torch.save({"model": raw}, path)
    with pytest.raises(WeightsError, match=r"other-bank.pth: audio.frontend.mel_basis differs"):
        load_checkpoint(path)


def test_non_finite_weights_are_refused(tmp_path):
    raw = dict(msclap_raw_state("2023"))
    raw["audio_encoder.projection.linear1.weight"] = raw["audio_encoder.projection.linear1.weight"].clone()
    raw["audio_encoder.projection.linear1.weight"][0, 0] = float("nan")
    path = tmp_path / "nan.pth"
    torch.save({"model": raw}, path)
    with pytest.raises(WeightsError, match=r"nan.pth: NaN or infinite weights in 1 tensor\(s\): audio_projection.linear1.weight"):
        load_checkpoint(path)


def test_checkpoint_of_another_variant_gives_a_short_message(tmp_path):
    path = tmp_path / "2022.pth"
    torch.save({"model": msclap_raw_state("2022")}, path)
    with pytest.raises(WeightsError) as err:
        load_checkpoint(path, variant="msclap-2023")
    message = str(err.value)
    assert "does not fit the model" in message and "more" in message
    assert len(message) < 2000 and "\n" not in message


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


class RunsCode:
    def __reduce__(self):
        return (os.system, ("echo this should never run",))


@pytest.mark.parametrize("payload", [print, RunsCode()])
def test_pickled_code_is_refused_with_the_reason(tmp_path, payload):
    path = tmp_path / "evil.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "hook": payload}, path)
    with pytest.raises(WeightsError) as err:
        read_state_dict(path)
    message = str(err.value)
    assert message.startswith(f"{path}: refused: loading it would run Python code")
    assert "weights_only=True" in message and "\x1b" not in message and "\n" not in message


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


def test_a_missing_checkpoint_path_is_not_called_an_unknown_model():
    from clapkit.weights.loading import load_pretrained

    with pytest.raises(WeightsError, match=r"^weights/missing.pth: no such checkpoint file or folder$"):
        load_pretrained("weights/missing.pth")
    with pytest.raises(WeightsError, match=r"unknown model 'msclap-2099'; known: clapkit-small, msclap-2023"):
        load_pretrained("msclap-2099")


def test_a_model_built_empty_holds_no_parameter_memory_but_computes_its_buffers():
    model = create_model("clapkit-small", empty=True)
    assert all(p.is_meta for p in model.parameters())
    assert not any(b.is_meta for b in model.buffers())  # mel filters, position indices
    assert not torch.nn.Linear(2, 2).weight.is_meta  # the factory's patch is gone afterwards


def test_loaded_weights_sit_in_place_and_compute_exactly_what_copied_ones_do(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "weights.pth"
    torch.save({"model": msclap_raw_state("2023")}, path)
    model, config = load_checkpoint(path, audio_only_model=True)
    copied = create_model(config)  # allocated as usual, then filled by copying
    copied.load_state_dict(model.state_dict())
    assert not any(p.is_meta for p in model.parameters())
    assert all(p.data_ptr() % 64 == 0 for p in model.parameters())
    wave = torch.randn(2, config.clip_samples)
    with torch.inference_mode():
        assert torch.equal(model.eval().encode_audio(wave), copied.eval().encode_audio(wave))


def test_tied_weights_stay_one_parameter_after_loading(tmp_path):
    save_pretrained(create_model("clapkit-small-pretrain"), get_config("clapkit-small-pretrain"), tmp_path / "run")
    model, _ = load_checkpoint(tmp_path / "run")
    groups = tied_groups(model)
    assert groups, "the decoder's output layer shares the token embedding"
    for first, *others in groups:
        assert all(model.get_parameter(name) is model.get_parameter(first) for name in others)


AUDIO_ONLY_LOAD = """
import re, sys
from pathlib import Path
def peak_mb():
    return int(re.search(r"VmHWM:\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024
import clapkit.pipeline  # torch, numpy and the audio libraries: their memory is not the load's
before = peak_mb()
model = clapkit.load(sys.argv[1], audio_only=True).model
print(peak_mb() - before, sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20)
"""


@pytest.mark.slow
def test_an_audio_only_load_costs_about_the_audio_weights_once(tmp_path):
    """Built on the meta device and filled from the memory-mapped file: neither a random init nor
    the text tower's tensors (three quarters of msclap-2023's file) are ever in memory."""
    import subprocess
    import sys

    path = tmp_path / "weights.pth"
    torch.save({"model": msclap_raw_state("2023")}, path)
    done = subprocess.run([sys.executable, "-c", AUDIO_ONLY_LOAD, str(path)], capture_output=True, text=True, check=True)
    grown_mb, audio_mb = map(float, done.stdout.split())
    assert audio_mb > 100
    assert grown_mb < 1.6 * audio_mb + 16, (grown_mb, audio_mb)  # 145–170 MB measured; 257 when built and copied
