"""Settings of the Streamlit app: flags after ``--``, environment, defaults, server config file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from streamlit_app.config import AppSettings, parse_settings
from tests.browser.support import REPO


def test_defaults() -> None:
    settings, ignored = parse_settings([], env={})
    assert settings == AppSettings() and ignored == []


def test_flags_win_over_environment() -> None:
    env = {"IMG2TEXT_MODEL": "/env/model", "IMG2TEXT_INDEX": os.pathsep.join(["/a", "/b"]),
           "IMG2TEXT_RUN": "/r", "IMG2TEXT_EXAMPLES": "/ex", "IMG2TEXT_MAX_PIXELS": "5000"}
    from_env, _ = parse_settings([], env=env)
    assert from_env.model == "/env/model" and from_env.indexes == (Path("/a"), Path("/b"))
    assert from_env.runs == (Path("/r"),) and from_env.examples == Path("/ex")
    assert from_env.max_pixels == 5000
    from_flags, ignored = parse_settings(["--model", "m", "--index", "/i", "--bogus"], env=env)
    assert from_flags.model == "m" and from_flags.indexes == (Path("/i"),)
    assert ignored == ["--bogus"]


def test_server_config_sets_upload_limit_and_local_address() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((REPO / "streamlit_app" / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == 10
    assert config["server"]["address"] == "127.0.0.1"
    assert config["server"]["port"] == 8501
    assert config["browser"]["gatherUsageStats"] is False
