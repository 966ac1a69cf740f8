"""``streamlit run`` as users start it, checked over HTTP."""

from __future__ import annotations

import httpx
import pytest

from tests.streamlit_app.conftest import StreamlitServer

pytestmark = pytest.mark.slow


def test_health_endpoint(streamlit_server: StreamlitServer) -> None:
    response = httpx.get(streamlit_server.url + "/_stcore/health", timeout=10)
    assert response.status_code == 200 and response.text == "ok"


def test_page_is_served(streamlit_server: StreamlitServer) -> None:
    response = httpx.get(streamlit_server.url + "/", timeout=10)
    assert response.status_code == 200
    assert "<title>Streamlit</title>" in response.text or "streamlit" in response.text.lower()

