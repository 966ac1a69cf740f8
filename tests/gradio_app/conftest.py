"""Fixtures: shared test data and one real Gradio server (``python -m gradio_app``) per session."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.browser.support import (
    MAX_PIXELS,
    MAX_UPLOAD_MB,
    AppData,
    app_data,
    browser_session,
    free_port,
    python,
    start_server,
    stop_server,
)


@dataclass(frozen=True)
class GradioServer:
    url: str
    data: AppData
    model: Path


@pytest.fixture(scope="session")
def apps_data(tmp_path_factory: pytest.TempPathFactory) -> AppData:
    return app_data(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def gradio_server(tiny_model_dir: Path, apps_data: AppData) -> Iterator[GradioServer]:
    """The app as users start it, on a free localhost port, with the tiny model."""
    port = free_port()
    cmd = [python(), "-m", "gradio_app", "--model", str(tiny_model_dir), "--device", "cpu",
           "--index", str(apps_data.index), "--run", str(apps_data.run),
           "--examples", str(apps_data.examples), "--port", str(port),
           "--max-upload-mb", str(MAX_UPLOAD_MB), "--max-pixels", str(MAX_PIXELS)]
    url = f"http://127.0.0.1:{port}"
    proc = start_server(cmd, url + "/")
    yield GradioServer(url, apps_data, tiny_model_dir)
    stop_server(proc)


UNRESOLVABLE_MODEL = "nobody-here/no-such-captioner"  # with HF_HUB_OFFLINE=1 the hub cannot be asked


@pytest.fixture(scope="session")
def degraded_server(apps_data: AppData) -> Iterator[GradioServer]:
    """The app started with a model id that cannot be resolved offline, and the collapsed index."""
    port = free_port()
    cmd = [python(), "-m", "gradio_app", "--model", UNRESOLVABLE_MODEL, "--device", "cpu",
           "--index", str(apps_data.collapsed), "--run", str(apps_data.run), "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    proc = start_server(cmd, url + "/", env={"HF_HUB_OFFLINE": "1"})
    yield GradioServer(url, apps_data, Path(UNRESOLVABLE_MODEL))
    stop_server(proc)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Module scope: Playwright's sync API allows one running instance at a time."""
    yield from browser_session()
