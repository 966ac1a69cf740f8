"""Quiet logs (issue 24): the Streamlit server's output holds no torch/torchao warnings."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.support import (
    AppData,
    browser_session,
    free_port,
    page_session,
    python,
    start_server,
    stop_server,
)
from tests.core.cli.test_quiet_logs import library_lines
from tests.streamlit_app.conftest import APP

pytestmark = pytest.mark.slow


def test_server_and_a_visit_with_the_model_loaded_print_no_library_warnings(tiny_model_dir: Path,
                                                                            apps_data: AppData) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server([python(), "-m", "streamlit", "run", str(APP), "--server.port", str(port),
                         "--server.headless", "true", "--browser.gatherUsageStats", "false", "--",
                         "--model", str(tiny_model_dir), "--device", "cpu", "--index", str(apps_data.index)],
                        url + "/_stcore/health")
    try:
        for browser in browser_session():
            for page in page_session(browser, url, ".st-key-caption-upload input[type=file]", state="attached"):
                page.get_by_text("Model ready", exact=False).first.wait_for(timeout=120_000)  # torch imported
    finally:
        stop_server(proc)
    output = proc.stdout.read() if proc.stdout else ""
    assert library_lines(output) == [], output[-4000:]
