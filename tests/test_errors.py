"""One error hierarchy: every user-facing error derives from ClapkitError and reads as one line."""
import pytest

from clapkit import errors


@pytest.mark.parametrize("name", ["UsageError", "ConfigError", "AudioError", "TokenizerError", "WeightsError",
                                  "ManifestError", "DatasetError", "ShardError"])
def test_every_user_error_is_a_clapkit_error(name):
    assert issubclass(getattr(errors, name), errors.ClapkitError)


def test_the_library_raises_the_hierarchy_s_classes():
    from clapkit.audio import AudioError
    from clapkit.data.adapters import DatasetError
    from clapkit.data.manifest import ManifestError
    from clapkit.data.offline import ReservedPackageError
    from clapkit.text import TokenizerError
    from clapkit.weights.loading import WeightsError

    for cls in (AudioError, DatasetError, ManifestError, TokenizerError, WeightsError, ReservedPackageError):
        assert issubclass(cls, errors.ClapkitError), cls


def test_one_line_strips_ansi_folds_and_cuts():
    text = "\x1b[31mWeights only load failed.\x1b[0m\n\n  Trying to load\tthis" + "x" * 1000
    line = errors.one_line(text, limit=60)
    assert "\x1b" not in line and "\n" not in line and len(line) == 60 and line.startswith("Weights only load failed. Trying")


def test_name_list_stays_short():
    assert errors.name_list(["a", "b"]) == "a, b"
    assert errors.name_list([f"k{i}" for i in range(100)], shown=3) == "k0, k1, k2 … and 97 more"
