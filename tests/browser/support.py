"""Shared by the app tests: a small gallery, a trained run and its index; servers; Chromium.

The data is built once per test session (under pytest's base temp folder) whichever app's
tests ask first: generated images only, so no third-party images are involved.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.fixtures.tiny_model import synthetic_pairs

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
MAX_PIXELS = 1_000_000  # the apps under test refuse images above this
MAX_UPLOAD_MB = 1
LONG_EXAMPLE = "holiday-2026-08-14-beach-sunset-panorama.png"  # an example whose name needs two lines


@dataclass(frozen=True)
class AppData:
    """Files the app tests use."""

    root: Path
    gallery: Path  # 16 generated images (the index's image folder)
    run: Path  # a 2-epoch SimCLR run over the gallery
    index: Path  # EmbeddingIndex of the gallery built from the run's checkpoint
    collapsed: Path  # the same index with every embedding near one point and no captions
    examples: Path  # 3 example images (example0..2.png) and one with a long name (LONG_EXAMPLE)
    good: Path  # a valid query / caption image
    not_image: Path  # a text file named .jpg
    too_many_pixels: Path  # small file, 2000x1000 pixels (over MAX_PIXELS)
    too_large: Path  # a valid image file over MAX_UPLOAD_MB


def app_data(base: Path) -> AppData:
    """Build (or reuse) the shared test data under ``base``."""
    root = base / "app-data"
    data = AppData(root, root / "gallery", root / "run", root / "index", root / "collapsed-index",
                   root / "examples", root / "query.png", root / "not-an-image.jpg", root / "huge-pixels.png",
                   root / "too-large.png")
    if (root / "DONE").is_file():
        return data
    shutil.rmtree(root, ignore_errors=True)
    data.gallery.mkdir(parents=True)
    data.examples.mkdir()
    from core.search import EmbeddingIndex
    from core.ssl import ImageRecord, SSLConfig, load_encoder, train

    records = []
    for i, (image, caption) in enumerate(synthetic_pairs(16, seed=3)):
        path = data.gallery / f"g{i:02d}.png"
        image.save(path)
        records.append(ImageRecord(f"g{i:02d}", path, [caption], []))
        if i < 3:
            image.save(data.examples / f"example{i}.png")
        if i == 3:
            image.save(data.examples / LONG_EXAMPLE)
    synthetic_pairs(2, seed=11)[1][0].save(data.good)
    data.not_image.write_text("this is a text file, not a JPEG\n")
    Image.new("RGB", (2000, 1000), (200, 200, 200)).save(data.too_many_pixels)
    noise = np.random.default_rng(0).integers(0, 256, (800, 800, 3), dtype=np.uint8)
    Image.fromarray(noise).save(data.too_large)  # ~1.9 MB: random pixels do not compress
    config = SSLConfig(data_dir=data.gallery, img_size=32, batch_size=8, num_epochs=2,
                       out_dir=data.run, device="cpu")
    train(config, progress=False)
    index = EmbeddingIndex.build(load_encoder(data.run), records, data_root=data.gallery,
                                 device="cpu", progress=False)
    index.save(data.index)
    collapsed_index(index).save(data.collapsed)
    (root / "DONE").write_text("ok\n")
    return data


def tar_index(data: AppData, folder: Path) -> Path:
    """The gallery as two webdataset tar shards, indexed with the run's checkpoint into
    ``folder/index`` (rows without files: each records its shard). Returns the index folder."""
    import tarfile

    from core.datasets import open_source
    from core.search import EmbeddingIndex
    from core.ssl import load_encoder

    shards = folder / "shards"
    shards.mkdir(parents=True)
    for i, group in enumerate((sorted(data.gallery.glob("*.png"))[:8], sorted(data.gallery.glob("*.png"))[8:])):
        with tarfile.open(shards / f"{i:05d}.tar", "w") as tar:
            for path in group:
                tar.add(path, arcname=path.name)
    index = EmbeddingIndex.build(load_encoder(data.run), open_source(str(shards / "*.tar")), device="cpu",
                                 progress=False, kind="exact")
    return index.save(folder / "index")


def collapsed_index(index):  # type: ignore[no-untyped-def]
    """``index`` deliberately collapsed: every embedding within 1% noise of one point, no captions.

    It keeps the run's checkpoint, so an app shows it as that run's index and embeds uploads for it.
    """
    import dataclasses

    import torch

    g = torch.Generator().manual_seed(0)
    point = torch.randn(1, index.dim, generator=g)
    near = torch.nn.functional.normalize(point + 0.01 * torch.randn(len(index), index.dim, generator=g), dim=1)
    flat = dataclasses.replace(index, embeddings=near, captions=[[] for _ in range(len(index))], backend=None)
    return flat.with_backend("exact")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    """Wait until ``url`` answers 200; fail with the server's output if it dies or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"server exited with {proc.returncode}:\n{out[-4000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    proc.wait(timeout=30)
    out = proc.stdout.read() if proc.stdout else ""
    pytest.fail(f"{url} did not answer within {timeout:.0f}s:\n{out[-4000:]}")


def start_server(cmd: list[str], url: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start a server process from the repository root and wait for ``url``."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "GRADIO_ANALYTICS_ENABLED": "False",
                "HF_HUB_OFFLINE": "1", **(env or {})}
    proc = subprocess.Popen(cmd, cwd=REPO, env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    wait_http(url, proc)
    return proc


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def python() -> str:
    return sys.executable


def tall_screenshot(page, path: Path, limit: int = 8000) -> None:  # type: ignore[no-untyped-def]
    """A screenshot of the whole page, content in inner scroll containers included.

    Streamlit scrolls its content inside a container, which ``full_page=True`` does not capture
    (the shot stops at the viewport), and a Gradio gallery still growing as its images arrive
    made a shot end mid-row; so once every image has loaded, the viewport is made as tall as the
    tallest scrolling content for the shot, then put back.
    """
    page.wait_for_function("[...document.images].every(i => i.complete)")
    size = page.viewport_size
    height = page.evaluate("Math.max(...[...document.querySelectorAll('*')].map(e => e.scrollHeight))")
    page.set_viewport_size({"width": size["width"], "height": min(int(height) + 24, limit)})
    page.wait_for_timeout(1000)  # let the page lay itself out at the new size
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size)


def streamlit_choose(page, key: str, typed: str, option: str) -> None:  # type: ignore[no-untyped-def]
    """Choose ``option`` (its text starts so) in the Streamlit selectbox ``key``, typing ``typed``
    into its box first (typing opens and filters the list; a bare click only focuses it at times)."""
    import re

    page.locator(f".st-key-{key} input").fill(typed)
    page.get_by_role("option", name=re.compile("^" + re.escape(option))).first.click()


def launch_chromium(playwright):  # type: ignore[no-untyped-def]
    """Debian's Chromium under Playwright; skip without it, but fail loudly in CI."""
    if not CHROMIUM.exists():
        msg = f"{CHROMIUM} not found (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def browser_session():  # type: ignore[no-untyped-def]
    """Generator for a session-scoped ``browser`` fixture: one headless Chromium."""
    try:
        from playwright import sync_api
    except ImportError as exc:
        msg = f"playwright is not installed ({exc}); install the dev extra"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    with sync_api.sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


def page_session(browser, url: str, ready: str, *, height: int = 900, state: str = "visible"):  # type: ignore[no-untyped-def]
    """Generator for a ``page`` fixture: a fresh browser context at ``url``, once ``ready`` shows."""
    context = browser.new_context(viewport={"width": 1280, "height": height})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(url + "/")
    page.wait_for_selector(ready, state=state)
    try:
        yield page
    finally:
        context.close()
