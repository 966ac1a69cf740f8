"""Flags, environment and defaults of the Gradio app's settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gradio_app.config import AppConfig, parse_config


def test_defaults_bind_localhost_7860() -> None:
    config = parse_config([], env={})
    assert config == AppConfig()
    assert (config.host, config.port, config.url) == ("127.0.0.1", 7860, "http://127.0.0.1:7860")
    assert config.indexes == () and config.examples is None and config.model is None


def test_environment_is_read() -> None:
    env = {"IMG2TEXT_MODEL": "/models/m", "IMG2TEXT_INDEX": os.pathsep.join(["/a", "/b"]),
           "IMG2TEXT_RUN": "/runs/r", "IMG2TEXT_EXAMPLES": "/ex", "IMG2TEXT_PORT": "9000",
           "IMG2TEXT_HOST": "0.0.0.0", "IMG2TEXT_MAX_UPLOAD_MB": "3",
           "IMG2TEXT_DEVICE": "cpu", "IMG2TEXT_MAX_PIXELS": "1000", "IMG2TEXT_QUEUE_SIZE": "5"}
    config = parse_config([], env=env)
    assert config.model == "/models/m"
    assert config.indexes == (Path("/a"), Path("/b"))
    assert config.runs == (Path("/runs/r"),)
    assert config.examples == Path("/ex")
    assert (config.host, config.port, config.max_upload_bytes) == ("0.0.0.0", 9000, 3 * 1024 * 1024)
    assert (config.device, config.max_pixels, config.queue_size) == ("cpu", 1000, 5)
    assert parse_config(["--queue-size", "3"], env=env).queue_size == 3


def test_flags_win_over_environment() -> None:
    env = {"IMG2TEXT_MODEL": "/env/model", "IMG2TEXT_PORT": "9000", "IMG2TEXT_INDEX": "/env/index"}
    config = parse_config(["--model", "flag/model", "--port", "7000", "--index", "/i1",
                           "--index", "/i2", "--max-upload-mb", "5"], env=env)
    assert config.model == "flag/model"
    assert config.port == 7000
    assert config.indexes == (Path("/i1"), Path("/i2"))
    assert config.max_upload_mb == 5


@pytest.mark.parametrize("argv", [["--port", "0"], ["--max-upload-mb", "0"], ["--port", "x"],
                                  ["--queue-size", "-1"]])
def test_bad_values_exit_with_usage(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_config(argv, env={})


def test_bad_port_in_environment_exits() -> None:
    with pytest.raises(SystemExit):
        parse_config([], env={"IMG2TEXT_PORT": "eighty"})


def test_mcp_from_flag_or_environment() -> None:
    assert parse_config([], env={}).mcp is False
    assert parse_config(["--mcp"], env={}).mcp is True
    assert parse_config([], env={"IMG2TEXT_MCP": "1"}).mcp is True
    assert parse_config([], env={"IMG2TEXT_MCP": "off"}).mcp is False
    with pytest.raises(SystemExit):  # argparse prints "IMG2TEXT_MCP: 'maybe' is not on or off"
        parse_config([], env={"IMG2TEXT_MCP": "maybe"})
