import pytest

from polyfold.core.errors import InputError
from polyfold.core.extras import require_extra


def test_require_extra_returns_the_module():
    import json

    assert require_extra("json", "timeseries", "datasets") is json


def test_missing_extra_names_both_install_forms():
    with pytest.raises(InputError) as info:
        require_extra("no_such_module_xyz", "timeseries", "datasets", needed_for="--dataset co2")
    msg = str(info.value)
    assert msg.startswith("--dataset co2 needs the optional module 'no_such_module_xyz'")
    assert 'pip install "./packages/timeseries[datasets]"' in msg
    assert 'pip install "polyfold-timeseries[datasets]"' in msg
