"""Fixtures: shared test data, settings in the environment, and a real ``streamlit run`` server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.browser.support import (
    MAX_PIXELS,
    REPO,
    AppData,
    app_data,
    browser_session,
    free_port,
    python,
    start_server,
    stop_server,
)

APP = REPO / "streamlit_app" / "app.py"


@dataclass(frozen=True)
class StreamlitServer:
    url: str
    data: AppData
    model: Path


@pytest.fixture(scope="session")
def apps_data(tmp_path_factory: pytest.TempPathFactory) -> AppData:
    return app_data(tmp_path_factory.getbasetemp())


@pytest.fixture()
def app_env(monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path, apps_data: AppData) -> AppData:
    """Configure the app (read by AppTest in this process) through its environment variables."""
    monkeypatch.setenv("IMG2TEXT_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("IMG2TEXT_DEVICE", "cpu")
    monkeypatch.setenv("IMG2TEXT_INDEX", str(apps_data.index))
    monkeypatch.setenv("IMG2TEXT_RUN", str(apps_data.run))
    monkeypatch.setenv("IMG2TEXT_EXAMPLES", str(apps_data.examples))
    monkeypatch.setenv("IMG2TEXT_MAX_PIXELS", str(MAX_PIXELS))
    return apps_data


@pytest.fixture(scope="session")
def streamlit_server(tiny_model_dir: Path, apps_data: AppData) -> Iterator[StreamlitServer]:
    """``streamlit run streamlit_app/app.py -- --model ... --index ...`` on a free port."""
    port = free_port()
    cmd = [python(), "-m", "streamlit", "run", str(APP), "--server.port", str(port),
           "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--", "--model", str(tiny_model_dir), "--device", "cpu", "--index", str(apps_data.index),
           "--run", str(apps_data.run), "--examples", str(apps_data.examples),
           "--max-pixels", str(MAX_PIXELS)]
    url = f"http://127.0.0.1:{port}"
    proc = start_server(cmd, url + "/_stcore/health")
    yield StreamlitServer(url, apps_data, tiny_model_dir)
    stop_server(proc)


UNRESOLVABLE_MODEL = "nobody-here/no-such-captioner"  # with HF_HUB_OFFLINE=1 the hub cannot be asked


@pytest.fixture(scope="session")
def degraded_server(apps_data: AppData) -> Iterator[StreamlitServer]:
    """The app started with a model id that cannot be resolved offline, and the collapsed index."""
    port = free_port()
    cmd = [python(), "-m", "streamlit", "run", str(APP), "--server.port", str(port),
           "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--", "--model", UNRESOLVABLE_MODEL, "--device", "cpu", "--index", str(apps_data.collapsed),
           "--run", str(apps_data.run)]
    url = f"http://127.0.0.1:{port}"
    proc = start_server(cmd, url + "/_stcore/health", env={"HF_HUB_OFFLINE": "1"})
    yield StreamlitServer(url, apps_data, Path(UNRESOLVABLE_MODEL))
    stop_server(proc)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Module scope: Playwright's sync API allows one running instance at a time."""
    yield from browser_session()
