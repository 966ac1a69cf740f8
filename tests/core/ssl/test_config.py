"""Invalid settings are project errors: ConfigError (a ValueError), naming the field."""

from __future__ import annotations

import pytest

import core
from core.captioning.generation import GenerationOptions
from core.devices import resolve_device, resolve_dtype
from core.ssl import SSLConfig


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"batch_size": 1}, "batch_size"), ({"img_size": 4}, "img_size"), ({"backbone": "vgg"}, "backbone"),
    ({"num_epochs": 1.5}, "num_epochs"), ({"split": ""}, "split"),
])
def test_invalid_ssl_settings_are_config_errors(kwargs: dict, field: str) -> None:
    with pytest.raises(core.ConfigError, match=field) as err:
        SSLConfig(**kwargs)
    assert isinstance(err.value, ValueError) and isinstance(err.value, core.Img2TextError)


def test_unknown_saved_field_is_a_config_error_and_keep_optimizer_defaults_on() -> None:
    with pytest.raises(core.ConfigError, match="unknown SSLConfig field.*batchsize"):
        SSLConfig.from_dict({"batchsize": 8})
    old_run = SSLConfig().to_dict()
    del old_run["keep_optimizer"]  # a config.json written before the field existed still loads
    assert SSLConfig.from_dict(old_run).keep_optimizer is True
    assert SSLConfig().keep_optimizer is True  # issue 24: a finished run can be extended by default


def test_generation_and_device_errors_are_config_errors() -> None:
    with pytest.raises(core.ConfigError, match="num_beams"):
        GenerationOptions(num_beams=0)
    with pytest.raises(core.ConfigError) as unknown:  # still a TypeError, as for any bad keyword
        GenerationOptions.from_kwargs(beam_width=3)
    assert isinstance(unknown.value, TypeError)
    with pytest.raises(core.ConfigError, match="unknown device"):
        resolve_device("quantum")
    with pytest.raises(core.ConfigError, match="unknown dtype"):
        resolve_dtype("float7", resolve_device("cpu"))
