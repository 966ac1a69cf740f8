"""Each `img2text deploy space` folder in a fresh venv from its requirements.txt, started as the platform
starts it (Gradio: ``python app.py``; Streamlit: ``streamlit run streamlit_app.py``), then a caption."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from gradio_client import Client, handle_file

import core
from core.cli.space import SpaceConfig, write_space
from tests.browser.support import (
    AppData,
    browser_session,
    free_port,
    page_session,
    stop_server,
    wait_http,
)
from tests.deploy.venvs import clean_env, venv_from_requirements

# A fresh venv takes minutes (about 9 with a cold pip cache on the 2-core VM, shared): past the 600 s default.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]


def started(cmd: list[str], folder: Path, url: str, **env: str) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, cwd=folder, env=clean_env(**env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    wait_http(url, proc, timeout=240)
    return proc


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("host-torch") / "site"


@pytest.fixture(scope="module")
def gradio_space(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, apps_data: AppData,
                 shim: Path) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("space") / "gradio"
    write_space(SpaceConfig(sdk="gradio", model=str(tiny_model_dir), index=apps_data.index, mcp=True,
                            device="cpu"), folder)
    python, seconds = venv_from_requirements(folder, folder.parent / "venv", shim)
    print(f"\ngradio folder: fresh venv from requirements.txt in {seconds:.0f} s")
    port = free_port()
    proc = started([str(python), "app.py"], folder, f"http://127.0.0.1:{port}/", IMG2TEXT_PORT=str(port),
                   IMG2TEXT_HOST="127.0.0.1")
    yield f"http://127.0.0.1:{port}/", folder
    stop_server(proc)


def test_gradio_space_captions_through_gradio_client(gradio_space: tuple[str, Path], apps_data: AppData,
                                                     tiny_model_dir: Path) -> None:
    url, folder = gradio_space
    client = Client(url, verbose=False)
    got = client.predict(handle_file(str(apps_data.good)), api_name="/caption")
    assert got and got == core.caption(apps_data.good, model=str(tiny_model_dir), device="cpu", max_new_tokens=15)
    similar = client.predict(handle_file(str(apps_data.gallery / "g03.png")), 3, api_name="/similar")
    assert similar["error"] is None and len(similar["results"]) == 3  # the shipped index/ is searched
    assert similar["results"][0]["image_path"]
    # the index travelled with its encoder and images (core.search.portable), not their old paths
    assert (folder / "index" / "encoder" / "checkpoint.safetensors").is_file()
    assert len(list((folder / "index" / "images").glob("*.png"))) == 16


def test_gradio_space_runs_from_its_own_copy_and_serves_mcp(gradio_space: tuple[str, Path]) -> None:
    url, folder = gradio_space
    import asyncio

    import mcp
    from mcp.client.streamable_http import streamable_http_client

    async def names() -> set[str]:
        async with streamable_http_client(url + "gradio_api/mcp/") as (r, w, _), mcp.ClientSession(r, w) as s:
            await s.initialize()
            return {t.name for t in (await s.list_tools()).tools}
    assert asyncio.run(names()) == {"caption_image", "find_similar_images", "find_images_by_words"}
    venv_python = folder.parent / "venv" / "bin" / "python"
    outside = subprocess.run([str(venv_python), "-c", "import core"], cwd=folder.parent, env=clean_env(),
                             capture_output=True, text=True)
    assert outside.returncode != 0 and "No module named 'core'" in outside.stderr  # not installed: the folder's own


@pytest.fixture(scope="module")
def streamlit_space(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path,
                    shim: Path) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("space") / "streamlit"
    write_space(SpaceConfig(sdk="streamlit", model=str(tiny_model_dir), device="cpu"), folder)
    python, seconds = venv_from_requirements(folder, folder.parent / "venv", shim)
    print(f"\nstreamlit folder: fresh venv from requirements.txt in {seconds:.0f} s")
    port = free_port()
    streamlit = str(python.parent / "streamlit")
    proc = started([streamlit, "run", "streamlit_app.py"], folder, f"http://127.0.0.1:{port}/_stcore/health",
                   STREAMLIT_SERVER_PORT=str(port), STREAMLIT_SERVER_ADDRESS="127.0.0.1")
    yield f"http://127.0.0.1:{port}"
    stop_server(proc)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    yield from browser_session()


def test_streamlit_space_captions_an_upload_in_chromium(browser, streamlit_space: str, apps_data: AppData,  # type: ignore[no-untyped-def]
                                                        tiny_model_dir: Path) -> None:
    upload = ".st-key-caption-upload input[type=file]"
    for page in page_session(browser, streamlit_space, upload, height=1000, state="attached"):
        assert "10MB" in page.locator(".st-key-caption-upload").inner_text()  # .streamlit/config.toml's cap
        page.locator(upload).set_input_files(str(apps_data.good))
        caption = page.locator("#caption-text")
        caption.wait_for(timeout=180_000)
        assert caption.inner_text() == core.caption(apps_data.good, model=str(tiny_model_dir), device="cpu",
                                                    max_new_tokens=15)
