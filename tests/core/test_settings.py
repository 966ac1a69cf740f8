"""The apps' shared settings: flags, environment, defaults and refusals."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from core import ConfigError
from core.settings import AppSettings, add_arguments, env_int, path_list, settings_from_args


def parse(argv: list[str], env: dict[str, str]) -> AppSettings:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return AppSettings(**settings_from_args(parser.parse_args(argv), env))


def test_defaults_without_flags_or_environment() -> None:
    assert parse([], {}) == AppSettings()
    assert AppSettings().max_pixels == 40_000_000 and AppSettings().device == "auto"


def test_environment_then_flags() -> None:
    env = {"IMG2TEXT_MODEL": "/m", "IMG2TEXT_INDEX": os.pathsep.join(["/a", " ", "/b"]), "IMG2TEXT_RUN": "/r",
           "IMG2TEXT_EXAMPLES": "/ex", "IMG2TEXT_DEVICE": "cpu", "IMG2TEXT_MAX_PIXELS": "1000"}
    s = parse([], env)
    assert (s.model, s.indexes, s.runs, s.examples, s.device, s.max_pixels) == (
        "/m", (Path("/a"), Path("/b")), (Path("/r"),), Path("/ex"), "cpu", 1000)
    f = parse(["--model", "x", "--index", "/i", "--index", "/j", "--max-pixels", "7"], env)
    assert (f.model, f.indexes, f.max_pixels, f.runs) == ("x", (Path("/i"), Path("/j")), 7, (Path("/r"),))


@pytest.mark.parametrize("raw", ["many", "0", "-3", "1.5"])
def test_bad_numbers_are_refused_by_name(raw: str) -> None:
    with pytest.raises(ConfigError, match="--max-pixels"):
        parse([], {"IMG2TEXT_MAX_PIXELS": raw})


def test_path_list_and_env_int() -> None:
    assert path_list(None) == () and path_list("") == ()
    assert path_list(f"~{os.sep}x") == (Path("~/x").expanduser(),)
    assert env_int(None, "n", 5) == 5 and env_int("", "n", 5) == 5 and env_int("9", "n", 5) == 9
    with pytest.raises(ConfigError, match="n must be >= 2"):
        env_int("1", "n", 5, minimum=2)


def test_precision_from_environment_and_refused_when_unknown() -> None:
    assert parse([], {}).precision == "float32"
    assert parse([], {"IMG2TEXT_PRECISION": "int8"}).precision == "int8"
    with pytest.raises(ConfigError, match="IMG2TEXT_PRECISION: 'fp8'"):
        parse([], {"IMG2TEXT_PRECISION": "fp8"})


def test_env_flag() -> None:
    from core.settings import env_flag

    assert [env_flag(v, "X") for v in ("1", "true", "On", None, "", "0", "no")] == [True] * 3 + [False] * 4
    with pytest.raises(ConfigError, match="X: 'maybe'"):
        env_flag("maybe", "X")
