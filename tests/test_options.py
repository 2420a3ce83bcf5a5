"""Option checks shared by the API and the command line: each bad value is one line naming the option."""
import math

import pytest

from clapkit import options
from clapkit.errors import ClapkitError, UsageError


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "3", None, math.nan])
def test_positive_int_refuses(value):
    with pytest.raises(UsageError, match=r"^batch_size: must be a whole number of at least 1"):
        options.positive_int("batch_size", value)


def test_positive_int_accepts_whole_numbers():
    assert options.positive_int("k", 3) == 3 and options.positive_int("k", 4.0) == 4


@pytest.mark.parametrize("value,cause", [(0, "above 0"), (-1, "above 0"), (math.nan, "finite"), (math.inf, "finite"),
                                         (1e-9, "at least 0.1"), (8.0, "at most 7"), ("1", "finite")])
def test_hop_seconds_refuses(value, cause):
    with pytest.raises(UsageError, match=cause):
        options.hop_seconds("hop_seconds", value, 7.0)


@pytest.mark.parametrize("template", ["{} and {}", "{label}", "{", "}", "{1}", "no field", "{!r}", "{:>3}", 7])
def test_template_needs_exactly_one_plain_field(template):
    with pytest.raises(UsageError) as err:
        options.template(template)
    assert str(err.value).startswith("template: ") and "\n" not in str(err.value)


def test_template_allows_escaped_braces():
    assert options.template("{{sound}}: {}").format("dog") == "{sound}: dog"


@pytest.mark.parametrize("value,cause", [("dog", "single string"), (["dog", None], r"labels\[1\]: must be a string"),
                                         ([], "at least one"), (42, "must be a list")])
def test_string_list_refuses(value, cause):
    with pytest.raises(UsageError, match=cause):
        options.string_list("labels", value)


def test_usage_errors_are_clapkit_errors_and_value_errors():
    assert issubclass(UsageError, ClapkitError) and issubclass(UsageError, ValueError)
