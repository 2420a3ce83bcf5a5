"""Model configs are data parsed strictly into dataclasses: an unknown or mistyped key is one line
naming the key and the file; the built-in configs parse and round-trip."""
import json

import pytest

from clapkit.errors import ConfigError
from clapkit.models.config import ModelConfig, get_config, list_configs, parse_config
from clapkit.models.factory import create_model


@pytest.mark.parametrize("name", ["msclap-2023", "msclap-2022", "msclap-clapcap"])
def test_built_in_configs_parse_and_round_trip(name):
    config = get_config(name)
    assert isinstance(config, ModelConfig) and config.name == name
    assert parse_config(json.loads(json.dumps(config.to_dict())), "again") == config


def test_every_config_file_is_listed():
    assert {"msclap-2023", "msclap-2022", "msclap-clapcap"} <= set(list_configs())


def write(tmp_path, mutate) -> str:
    data = get_config("msclap-2023").to_dict()
    mutate(data)
    path = tmp_path / "model.json"
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.parametrize("mutate,cause", [
    (lambda d: d.update(embed_dims=512), "unknown key embed_dims"),
    (lambda d: d["audio"]["frontend"].update(hop=320), "unknown key audio.frontend.hop"),
    (lambda d: d["audio"]["frontend"].update(sample_rate="44100"), "audio.frontend.sample_rate must be a whole number"),
    (lambda d: d["text"].update(pooling="average"), "text.pooling must be one of"),
    (lambda d: d.update(embed_dim=True), "embed_dim must be a whole number"),
    (lambda d: d["audio"].pop("out_dim"), "missing required key audio.out_dim"),
    (lambda d: d.update(audio=[1]), "audio: expected an object"),
])
def test_bad_keys_are_named_with_the_file(tmp_path, mutate, cause):
    path = write(tmp_path, mutate)
    with pytest.raises(ConfigError) as err:
        get_config(path)
    assert str(err.value).startswith(f"{path}: ") and cause in str(err.value) and "\n" not in str(err.value)


def test_unknown_architecture_arguments_are_refused_when_building(tmp_path):
    config = get_config(write(tmp_path, lambda d: d["audio"]["args"].update(depth=[2, 2])))
    with pytest.raises(ConfigError, match=r"audio.args: unknown argument 'depth' for htsat"):
        create_model(config)


def test_unknown_names_list_the_known_ones(tmp_path):
    with pytest.raises(ConfigError, match="unknown model config 'msclap-2099'; known: clapkit-small, clapkit-small-pretrain, laion-htsat-base"):
        get_config("msclap-2099")
    bad = tmp_path / "broken.json"
    bad.write_text("{")
    with pytest.raises(ConfigError, match="broken.json: not valid JSON"):
        get_config(bad)
