"""The Streamlit app under hostile uploads (AppTest), concurrent browser sessions on a real
``streamlit run`` server (Playwright + Chromium), and probes of what the server hands out."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.browser.support import free_port
from tests.reliability.conftest import (
    REPO,
    child_env,
    require,
    require_chromium,
    start_server,
    stop_server,
)
from tests.reliability.corpus import BY_NAME, encode, scene
from tests.reliability.datagen import image

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning")]

APP = REPO / "streamlit_app" / "app.py"
MAX_PIXELS = 1_000_000
BEAM_DEFAULT = {"num_beams": 4, "do_sample": False, "max_new_tokens": 15}  # the page's defaults
APP_CASES = ["text.jpg", "bomb-100000x100000.png", "grey16.png", "one-pixel.png", "cmyk.jpg",
             "drawing.svg", "truncated.jpg",
             # issue #11: small files whose structure costs more than their pixels
             "scans-300.jpg", "strips-20000.tiff", "comment-100k.gif", "chunks-5000.png"]
SECRET = "TOP-SECRET-streamlit-canary"


@pytest.fixture()
def apptest(monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path):
    require("streamlit")
    from streamlit.testing.v1 import AppTest

    for name in ("IMG2TEXT_INDEX", "IMG2TEXT_RUN", "IMG2TEXT_EXAMPLES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IMG2TEXT_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("IMG2TEXT_DEVICE", "cpu")
    monkeypatch.setenv("IMG2TEXT_MAX_PIXELS", str(MAX_PIXELS))
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def upload(at, name: str, data: bytes, mime: str = "image/png") -> None:
    at.file_uploader(key="caption-upload").set_value((name, data, mime))
    at.run()
    assert not at.exception, at.exception


@pytest.mark.timeout(300)
def test_hostile_uploads_show_a_caption_or_the_reason(apptest, captioner) -> None:
    for name in APP_CASES:
        case = BY_NAME[name]
        upload(apptest, name, case.data)
        result = apptest.session_state["caption_result"]
        if case.ok:
            assert not apptest.error, (name, apptest.error[0].value)
            assert result["caption"] == captioner.caption(case.data, **BEAM_DEFAULT), name
        else:
            assert result["caption"] is None
            message = apptest.error[0].value
            assert name in message and re.search(case.expect, message), (name, message)


@pytest.mark.timeout(120)
def test_oversized_and_over_the_pixel_cap_uploads_are_refused_before_decoding(apptest) -> None:
    from streamlit import config

    # The app reads server.maxUploadSize (10 MB from streamlit_app/.streamlit/config.toml under
    # `streamlit run`; AppTest does not read that file): set 1 MB and send a valid PNG of 2 MB.
    previous = config.get_option("server.maxUploadSize")
    config.set_option("server.maxUploadSize", 1)
    try:
        big = encode(scene(8, 8), "PNG") + b"\0" * (2 * 1024 * 1024)
        upload(apptest, "huge.png", big)
    finally:
        config.set_option("server.maxUploadSize", previous)
    assert apptest.error, "a 2 MB upload passed a 1 MB limit"
    assert "huge.png" in apptest.error[0].value and "byte limit" in apptest.error[0].value
    # 2000 x 1000 (under the size limit, over --max-pixels): refused from the header.
    upload(apptest, "wide.png", encode(scene(2000, 1000), "PNG"))
    assert "over the limit of 1,000,000" in apptest.error[0].value
    # ...and the page recovers.
    upload(apptest, "fine.png", encode(scene(), "PNG"))
    assert not apptest.error and apptest.session_state["caption_result"]["caption"]


# -- a real server, several browser sessions at once ------------------------------------------

@dataclass
class Server:
    url: str
    proc: object


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path) -> Iterator[Server]:
    require("streamlit")
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port),
           "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--server.maxUploadSize", "1",
           "--", "--model", str(tiny_model_dir), "--device", "cpu", "--max-pixels", str(MAX_PIXELS)]
    url = f"http://127.0.0.1:{port}"
    proc = start_server(cmd, url + "/_stcore/health")
    yield Server(url, proc)
    out = stop_server(proc)  # type: ignore[arg-type]
    assert "Traceback" not in out, out[-4000:]


SESSIONS = 8


@pytest.mark.browser
@pytest.mark.timeout(420)
def test_concurrent_browser_sessions_each_see_their_own_caption(server: Server, captioner, tmp_path: Path) -> None:
    require_chromium()
    require("playwright.sync_api")
    images = []
    for i in range(SESSIONS):
        path = tmp_path / f"session{i}.png"
        image(200 + i, 40).save(path)
        images.append(path)
    want = [captioner.caption(p, **BEAM_DEFAULT) for p in images]
    assert len(set(want)) > 1, "pick images with different captions, or sessions cannot be told apart"
    # The browser side runs in a fresh process (see tests/reliability/streamlit_sessions.py).
    proc = subprocess.run([sys.executable, "-m", "tests.reliability.streamlit_sessions", server.url,
                           *map(str, images)], cwd=REPO, env=child_env(), capture_output=True,
                          text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-4000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"\n{SESSIONS} sessions captioned in {seen['seconds']:.1f}s")
    assert seen["captions"] == want
    assert re.search(r"must be|exceeds|too large|larger than", seen["refusal"], re.I)
    assert seen["caption_after_refusal"] in (None, want[0])
    assert server.proc.poll() is None  # type: ignore[attr-defined]


PROBES = ["/media/../../../../etc/passwd", "/media/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
          "/media/..%2f..%2f..%2f..%2fetc%2fpasswd", "/app/static/../../../../etc/passwd",
          "/app/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/static/../../../../etc/passwd",
          "/..%2f..%2f..%2f..%2fetc/passwd", "//etc/passwd", "/_stcore/../../../../etc/passwd",
          "/component/..%2f..%2f..%2f..%2fetc/passwd", "/{secret}"]


@pytest.mark.timeout(120)
def test_no_file_outside_the_app_is_served(server: Server, tmp_path: Path) -> None:
    import httpx

    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    with httpx.Client(base_url=server.url, timeout=20) as http_client:
        for probe in PROBES:
            raw = probe.format(secret=str(secret).lstrip("/"))
            request = http_client.build_request("GET", "/")
            request.url = request.url.copy_with(raw_path=raw.encode())
            response = http_client.send(request)
            assert "root:x:0:0" not in response.text and SECRET not in response.text, (probe, response.status_code)
        assert http_client.get("/_stcore/health").status_code == 200
