"""Broken and hostile image files through core, the Captioner and the CLI: a caption or a reason.

The corpus (``corpus.py``) is generated here; each case either loads as an RGB image of the
expected size or raises ``InvalidImageError`` whose message names the input and matches the
expected reason. Time is bounded per test (pytest-timeout) and per file; memory is bounded by
measuring the peak RSS of a child process that loads every file.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core import InvalidImageError, load_image
from tests.reliability.conftest import REPO, child_env, cli
from tests.reliability.corpus import CASES, Case

GREEDY = {"num_beams": 1, "max_new_tokens": 8}
PER_FILE_SECONDS = 20  # generous: two shared cores; a hang or a slow bomb takes far longer


def check_outcome(case: Case, source: str, result: object) -> None:
    """``result`` is what loading / captioning gave for ``case``: compare with its expectation."""
    if case.ok:
        assert not isinstance(result, BaseException), f"{case.name} should work, got {result!r}"
        return
    assert isinstance(result, InvalidImageError), f"{case.name} should be refused, got {result!r}"
    assert result.source == source
    assert str(result).startswith(f"{source}: ")
    assert re.search(case.expect, result.reason), f"{case.name}: unhelpful reason {result.reason!r}"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_load_image_bytes_and_path(case: Case, corpus_dir: Path) -> None:
    for src, source in ((case.data, f"<bytes: {len(case.data)} bytes>"),
                        (corpus_dir / case.name, str(corpus_dir / case.name))):
        start = time.perf_counter()
        try:
            result: object = load_image(src)
        except InvalidImageError as exc:
            result = exc
        elapsed = time.perf_counter() - start
        assert elapsed < PER_FILE_SECONDS, f"{case.name} took {elapsed:.1f}s"
        check_outcome(case, source, result)
        if case.ok:
            assert result.mode == "RGB" and result.size == case.size  # type: ignore[attr-defined]


@pytest.mark.timeout(60)
def test_bombs_are_refused_against_the_configured_cap() -> None:
    """Headers claiming billions of pixels are refused with *our* limit, not a library's."""
    bombs = [c for c in CASES if c.name.startswith("bomb-")]
    for case in bombs:
        with pytest.raises(InvalidImageError) as info:
            load_image(case.data, max_pixels=1_000_000)
        assert "over the limit of 1,000,000" in info.value.reason, (case.name, info.value.reason)
        assert re.search(r"image is [\dx =,]+ pixels", info.value.reason), info.value.reason  # its claimed size


MEMORY_PROBE = r"""
import json, sys, time
from pathlib import Path
from core import InvalidImageError, load_image

def hwm_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

def reset_peak():  # Linux >= 4.0: writing 5 to clear_refs resets VmHWM to the current RSS
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")

load_image(Path(sys.argv[2]))  # warm up decoders
rows = []
for path in sorted(Path(sys.argv[1]).iterdir()):
    reset_peak()
    base = hwm_mb()
    t = time.perf_counter()
    try:
        load_image(path).size
        outcome = "ok"
    except InvalidImageError as exc:
        outcome = exc.reason[:60]
    rows.append([path.name, round(hwm_mb() - base, 1), round(time.perf_counter() - t, 3), outcome])
print(json.dumps(rows))
"""


@pytest.mark.timeout(120)
def test_peak_memory_of_loading_the_whole_corpus_is_small(corpus_dir: Path) -> None:
    """One fresh process loads every file; its peak RSS grows by far less than any bomb's size."""
    out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(corpus_dir), str(corpus_dir / "scene.bmp")],
                         cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=110)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = json.loads(out.stdout.strip().splitlines()[-1])
    print("\nfile, peak RSS growth (MB), seconds, outcome")
    for row in rows:
        print(*row, sep=", ")
    assert len(rows) == len(CASES)
    worst = max(rows, key=lambda r: r[1])
    # The 100,000 x 100,000 PNG would need 30 GB; the 65,535^2 GIF 4 GB; the zTXt chunk 64 MB.
    assert worst[1] < 32, f"loading {worst[0]} grew the peak RSS by {worst[1]} MB"


@pytest.mark.timeout(60)
def test_special_files_are_refused_without_blocking(tmp_path: Path) -> None:
    """A FIFO would block a reader forever; /dev/zero never ends; a folder is not an image."""
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.png"
    zero.symlink_to("/dev/zero")
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    dangling = tmp_path / "dangling.jpg"
    dangling.symlink_to(tmp_path / "nowhere.jpg")
    for path, reason in ((fifo, "not a regular file"), (zero, "not a regular file"),
                         (folder, "not a regular file"), (dangling, "not found")):
        with pytest.raises(InvalidImageError, match=reason) as info:
            load_image(path)
        assert info.value.source == str(path)


@pytest.mark.timeout(180)
def test_captioner_captions_the_good_and_explains_the_bad(captioner, corpus_dir: Path) -> None:
    paths = [corpus_dir / c.name for c in CASES]
    results = captioner.caption_batch(paths, batch_size=8, errors="return", **GREEDY)
    assert len(results) == len(CASES)
    for case, path, result in zip(CASES, paths, results, strict=True):
        check_outcome(case, str(path), result)
        if case.ok:
            assert isinstance(result, str) and result.strip(), case.name
    # The same files as bytes, one call per file (errors="raise" is what core.caption uses).
    for case in CASES:
        if case.ok:
            assert captioner.caption(case.data, **GREEDY) == results[CASES.index(case)]
        else:
            with pytest.raises(InvalidImageError, match=case.expect):
                captioner.caption(case.data, **GREEDY)


@pytest.mark.timeout(180)
def test_device_jpeg_decoding_gives_the_same_outcomes(captioner, tiny_model_dir: Path) -> None:
    """``device_decode`` (the default on CUDA: torchvision/nvJPEG for plain JPEGs) must caption
    and refuse exactly what the Pillow path does; here its CPU twin is checked."""
    import core

    try:
        direct = core.Captioner(str(tiny_model_dir), device="cpu", device_decode=True)
    except TypeError:
        pytest.skip("this Captioner has no device_decode option")
    for case in CASES:
        want = captioner.caption_batch([case.data], errors="return", **GREEDY)[0]
        got = direct.caption_batch([case.data], errors="return", **GREEDY)[0]
        assert str(got) == str(want) and type(got) is type(want), (case.name, got, want)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_cli_over_the_corpus_folder(captioner, corpus_dir: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    """``img2text caption DIR``: exit 1, every bad file named on stderr, every good one captioned.

    Files without an image extension (page.html, drawing.svg) are not picked up from a folder,
    so they are named explicitly as well, as a user would.
    """
    out = tmp_path / "caps.jsonl"
    explicit = [str(corpus_dir / "page.html"), str(corpus_dir / "drawing.svg")]
    proc = cli("caption", str(corpus_dir), *explicit, "--model", str(tiny_model_dir), "--device", "cpu",
               "--greedy", "--max-new-tokens", "8", "--format", "jsonl", "-o", str(out))
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    captioned = {Path(r["path"]).name: r["caption"] for r in rows if not r.get("error")}
    failed = {Path(r["path"]).name: r["error"] for r in rows if r.get("error")}  # rows, as the apps'
    good = [c for c in CASES if c.ok]
    bad = [c for c in CASES if not c.ok]
    assert sorted(captioned) == sorted(c.name for c in good)
    assert sorted(failed) == sorted(c.name for c in bad)
    for case in bad:
        assert re.search(case.expect, failed[case.name]), (case.name, failed[case.name])
    for case in good:
        assert captioned[case.name] == captioner.caption(corpus_dir / case.name, **GREEDY), case.name
    skipped = [line for line in proc.stderr.splitlines() if line.startswith("img2text: skipped ")]
    assert len(skipped) == len(bad), proc.stderr[-3000:]
    for case in bad:
        line = next((s for s in skipped if f"{corpus_dir / case.name}: " in s), None)
        assert line is not None, f"{case.name} not reported:\n{proc.stderr[-3000:]}"
        assert re.search(case.expect, line), line
    assert f"captioned {len(good)} image(s), {len(bad)} failed" in proc.stderr
