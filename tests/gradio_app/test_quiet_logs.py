"""Quiet logs (issue 24): the Gradio server's output holds no torch/torchao warnings."""

from __future__ import annotations

from pathlib import Path

import pytest
from gradio_client import Client, handle_file

from tests.browser.support import AppData, free_port, python, start_server, stop_server
from tests.core.cli.test_quiet_logs import library_lines

pytestmark = pytest.mark.slow


def test_server_start_and_first_caption_print_no_library_warnings(tiny_model_dir: Path, apps_data: AppData) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server([python(), "-m", "gradio_app", "--model", str(tiny_model_dir), "--device", "cpu",
                         "--index", str(apps_data.index), "--port", str(port)], url + "/")
    try:
        image = next(apps_data.gallery.glob("*.png"))
        caption = Client(url + "/", verbose=False).predict(handle_file(str(image)), api_name="/caption")
        assert isinstance(caption, str) and caption  # the model loaded, so torch and torchao were imported
    finally:
        stop_server(proc)
    output = proc.stdout.read() if proc.stdout else ""
    assert library_lines(output) == [], output[-4000:]
    assert "image-to-text Gradio app on" in output
