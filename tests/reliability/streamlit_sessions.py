"""Drive several Chromium sessions of a running Streamlit app; run as a script in a fresh process.

``test_concurrent_browser_sessions_each_see_their_own_caption`` starts this with
``python -m tests.reliability.streamlit_sessions URL IMAGE...``: the pytest process may already
hold an in-process Streamlit runtime (AppTest), and Playwright's sync API sharing that process has
stalled (the server idle, the pages never updated), so the browser side gets a process of its own.
Prints one JSON object: the caption each session saw (in image order) and what the page said
about an over-the-limit upload.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.reliability.conftest import CHROMIUM_ARGS, require_chromium

UPLOAD = ".st-key-caption-upload input[type=file]"


def main(url: str, images: list[str]) -> dict:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(require_chromium()), args=CHROMIUM_ARGS)
        try:
            pages = []
            for _ in images:
                page = browser.new_context(viewport={"width": 1100, "height": 900}).new_page()
                page.set_default_timeout(180_000)
                page.goto(url + "/")
                pages.append(page)
            for page in pages:
                page.wait_for_selector(UPLOAD, state="attached")
            start = time.perf_counter()
            for page, path in zip(pages, images, strict=True):  # all uploads first: runs overlap
                page.locator(UPLOAD).set_input_files(path)
            got = []
            for page in pages:
                caption = page.locator("#caption-text")
                caption.wait_for()
                got.append(caption.inner_text())
            seconds = time.perf_counter() - start
            # Over the 1 MB upload limit: the uploader refuses it, the page keeps working.
            big = Path(images[0]).with_name("big.bin.png")
            big.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * (2 * 1024 * 1024))
            pages[0].locator(UPLOAD).set_input_files(str(big))
            refusal = pages[0].get_by_text(re.compile(r"must be|exceeds|too large|larger than", re.I)).first
            refusal.wait_for()
            after = (pages[0].locator("#caption-text").inner_text()
                     if pages[0].locator("#caption-text").count() else None)
            return {"captions": got, "seconds": seconds, "refusal": refusal.inner_text(),
                    "caption_after_refusal": after}
        finally:
            browser.close()


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2:])))
