"""``streamlit run`` as users start it, checked over HTTP."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.browser.support import python
from tests.streamlit_app.conftest import StreamlitServer

pytestmark = pytest.mark.slow


def test_health_endpoint(streamlit_server: StreamlitServer) -> None:
    response = httpx.get(streamlit_server.url + "/_stcore/health", timeout=10)
    assert response.status_code == 200 and response.text == "ok"


def test_page_is_served(streamlit_server: StreamlitServer) -> None:
    response = httpx.get(streamlit_server.url + "/", timeout=10)
    assert response.status_code == 200
    assert "<title>Streamlit</title>" in response.text or "streamlit" in response.text.lower()



def test_model_loads_at_server_start_before_any_browser(tiny_model_dir) -> None:  # type: ignore[no-untyped-def]
    """``streamlit run`` starts loading the model with the server (st.App's start hook), as the
    Gradio app does: the log says it is ready while no page has been asked for (health only)."""
    import queue
    import threading

    from tests.browser.support import free_port, start_server, stop_server
    from tests.streamlit_app.conftest import APP

    port = free_port()
    cmd = [python(), "-m", "streamlit", "run", str(APP), "--server.port", str(port),
           "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--", "--model", str(tiny_model_dir), "--device", "cpu"]
    proc = start_server(cmd, f"http://127.0.0.1:{port}/_stcore/health")
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 180
        while not any(line.startswith("image-to-text: Model ready") for line in seen):
            assert time.monotonic() < deadline, seen
            try:
                seen.append(lines.get(timeout=1))
            except queue.Empty:
                pass
    finally:
        stop_server(proc)
    ours = [line.strip() for line in seen if line.startswith("image-to-text:")]
    assert ours == [f"image-to-text: Loading the captioning model {tiny_model_dir}…",
                    f"image-to-text: Loading the captioning model {tiny_model_dir}: reading weights, 0 s",
                    f"image-to-text: Model ready: {tiny_model_dir}"], ours
