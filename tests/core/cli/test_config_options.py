"""Options generated from dataclass configs: every field gets a flag that sets exactly that field."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from core.captioning import GenerationOptions
from core.cli import build_parser
from core.cli.config_options import (
    add_config_options,
    config_from_args,
    config_overrides,
    flag_name,
)
from core.cli.options import generation_kwargs


@dataclass(frozen=True)
class Sample:
    """Every kind of field the generator handles."""

    count: int = field(default=3, metadata={"help": "how many"})
    ratio: float = field(default=0.5, metadata={"help": "a share"})
    name: str = field(default="a", metadata={"help": "a name", "choices": ("a", "b")})
    mode: Literal["fast", "slow"] = field(default="fast", metadata={"help": "speed"})
    limit: int | None = field(default=None, metadata={"help": "optional cap"})
    folder: Path = field(default=Path("out"), metadata={"help": "where"})
    sizes: tuple[int, ...] = field(default=(1, 2), metadata={"help": "sizes"})
    pair: tuple[float, float] = field(default=(0.0, 1.0), metadata={"help": "low high"})
    flag: bool = field(default=False, metadata={"help": "switch on"})
    keep: bool = field(default=True, metadata={"help": "switch off with --no-keep"})
    plain: int = 7  # no metadata: still gets a flag


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="t")
    add_config_options(p, Sample, aliases={"count": ["-n"]})
    return p


def test_no_flags_give_the_dataclass_defaults() -> None:
    args = _parser().parse_args([])
    assert config_overrides(Sample, args) == {}
    assert config_from_args(Sample, args) == Sample()


@pytest.mark.parametrize(("argv", "want"), [
    (["-n", "5"], {"count": 5}),
    (["--count", "5"], {"count": 5}),
    (["--ratio", "0.25"], {"ratio": 0.25}),
    (["--name", "b"], {"name": "b"}),
    (["--mode", "slow"], {"mode": "slow"}),
    (["--limit", "9"], {"limit": 9}),
    (["--limit", "none"], {"limit": None}),
    (["--folder", "x/y"], {"folder": Path("x/y")}),
    (["--sizes", "4", "5", "6"], {"sizes": (4, 5, 6)}),
    (["--pair", "0.1", "0.9"], {"pair": (0.1, 0.9)}),
    (["--flag"], {"flag": True}),
    (["--no-keep"], {"keep": False}),
    (["--plain", "8"], {"plain": 8}),
])
def test_each_kind_of_flag_sets_its_field(argv: list[str], want: dict) -> None:
    config = config_from_args(Sample, _parser().parse_args(argv))
    assert config == dataclasses.replace(Sample(), **want)


@pytest.mark.parametrize("argv", [["--name", "c"], ["--mode", "medium"], ["--count", "x"],
                                  ["--pair", "1"], ["--flag", "1"]])
def test_bad_values_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        _parser().parse_args(argv)
    assert info.value.code == 2


def test_help_shows_every_field_with_its_help_and_default() -> None:
    text = " ".join(_parser().format_help().split())  # undo argparse's line wrapping
    for f in dataclasses.fields(Sample):
        assert flag_name(f.name) in text, f.name
        assert f.metadata.get("help", "") in text, f.name
    assert "(default: 1 2)" in text and "(default: fast)" in text and "--no-flag" in text
    assert "('none' = unset)" in text


def test_unsupported_field_types_fail_when_the_parser_is_built() -> None:
    @dataclass
    class Odd:
        mapping: dict = field(default_factory=dict)

    with pytest.raises(TypeError, match="no command-line form"):
        add_config_options(argparse.ArgumentParser(), Odd)


@pytest.mark.parametrize("cls", [GenerationOptions])
def test_project_configs_document_every_field(cls: type) -> None:
    missing = [f.name for f in dataclasses.fields(cls) if not f.metadata.get("help")]
    assert not missing, f"fields without metadata help: {missing}"


def _other_value(f: dataclasses.Field, default: object) -> object:
    """A valid value different from ``default`` for a GenerationOptions field."""
    if isinstance(default, bool):
        return not default
    if f.name == "top_p":
        return 0.5
    if f.name == "prompt":  # the one text option
        return "a photo of"
    if isinstance(default, float):
        return default * 2
    return 1 + (default or 2)  # ints and optional ints


def test_every_generation_option_is_a_caption_flag_that_sets_it() -> None:
    parser = build_parser()
    base = ["caption", "x.jpg"]
    for f in dataclasses.fields(GenerationOptions):
        default = getattr(GenerationOptions(), f.name)
        value = _other_value(f, default)
        flag = flag_name(f.name)
        argv = [*base, flag if value is True else f"--no-{flag[2:]}"] if isinstance(value, bool) \
            else [*base, flag, str(value)]
        kwargs = generation_kwargs(parser.parse_args(argv))
        assert kwargs[f.name] == value, (f.name, kwargs)


def test_caption_help_lists_every_generation_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["caption", "--help"])
    out = capsys.readouterr().out
    for f in dataclasses.fields(GenerationOptions):
        assert flag_name(f.name) in out, f.name


def test_decoding_shortcuts() -> None:
    parser = build_parser()

    def kwargs(*flags: str) -> dict:
        return generation_kwargs(parser.parse_args(["caption", "x.jpg", *flags]))

    assert kwargs() == {}
    assert kwargs("--greedy") == {"num_beams": 1}
    assert kwargs("--sample", "--seed", "3") == {"do_sample": True, "num_beams": 1, "seed": 3}
    assert kwargs("--sample", "--num-beams", "2") == {"do_sample": True, "num_beams": 2}
    from core.errors import ConfigError

    with pytest.raises(ConfigError, match="--greedy"):
        kwargs("--greedy", "--num-beams", "3")
    with pytest.raises(ConfigError, match="num_beams"):
        kwargs("--num-beams", "0")
