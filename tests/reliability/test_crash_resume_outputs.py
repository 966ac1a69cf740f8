"""Crashes lose nothing in the training-set outputs: SIGKILL mid-run, then run again.

* ``img2text caption DIR --sidecar``: no torn or missing caption file, none written twice (a file
  finished before the kill keeps its inode: the rerun skipped it), no temporary file left.
* ``img2text caption DIR --format webdataset -o OUT --resume``: every image in exactly one
  finished shard, the bytes intact, no temporary shard left.
"""

from __future__ import annotations

import json
import random
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.reliability.conftest import cli, cli_popen, kill
from tests.reliability.datagen import make_images
from tests.reliability.test_crash_resume import wait_for

pytestmark = pytest.mark.slow

CAPTION = ["--greedy", "--max-new-tokens", "8", "--batch-size", "2", "--device", "cpu", "--quiet"]


def _tree(tmp_path: Path, n: int) -> Path:
    folder = tmp_path / "photos"
    make_images(folder / "a", n // 2, size=24)
    make_images(folder / "b" / "ünï", n - n // 2, size=24, start=n // 2)
    for i, path in enumerate(sorted((folder / "b").rglob("*.png"))[:3]):
        path.rename(path.with_name(f"name {i} é.png"))
    return folder


@pytest.mark.timeout(400)
def test_sidecar_run_killed_midway_then_rerun_finishes_without_torn_or_repeated_files(
        tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = _tree(tmp_path, 120)
    ref = tmp_path / "ref"
    done = cli("caption", str(folder), "--model", str(tiny_model_dir), "--sidecar", "-o", str(ref), *CAPTION)
    assert done.returncode == 0, done.stderr[-2000:]
    expected = {p.relative_to(ref).as_posix(): p.read_bytes() for p in ref.rglob("*.txt")}
    assert len(expected) == 120

    args = ["caption", str(folder), "--model", str(tiny_model_dir), "--sidecar", *CAPTION]
    log = (tmp_path / "kill.log").open("w")
    proc = cli_popen(*args, stdout=log, stderr=subprocess.STDOUT)
    try:
        target = random.Random(0).randint(20, 60)
        wait_for(lambda: len(list(folder.rglob("*.txt"))) >= target, 240, proc, step=0.005)
        assert proc.poll() is None, "the run finished before it could be killed"
    finally:
        kill(proc)

    survivors = {p: p.stat().st_ino for p in folder.rglob("*.txt")}
    assert 0 < len(survivors) < 120
    for path in survivors:  # whole files only: each one is the caption an uninterrupted run writes
        assert path.read_bytes() == expected[path.relative_to(folder).as_posix()], path

    again = cli(*args[:-1])  # without --quiet: the counts line
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"{120 - len(survivors)} written, {len(survivors)} skipped, 0 failed" in again.stderr
    final = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*.txt")}
    assert final == expected
    assert {p: p.stat().st_ino for p in survivors} == survivors, "a finished caption file was rewritten"
    assert not [p for p in folder.rglob("*") if p.name.endswith(".tmp")], "a temporary file was left"


def _samples(out: Path) -> list[tuple[str, dict, bytes | None]]:
    rows = []
    for shard in sorted(out.glob("shard-*.tar")):
        with tarfile.open(shard) as tar:
            files = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
        for name, data in files.items():
            if name.endswith(".json"):
                key = name[:-5]
                rows.append((key, json.loads(data), files.get(f"{key}.png")))
    return rows


@pytest.mark.timeout(400)
def test_webdataset_run_killed_midway_resumes_with_every_image_once(tiny_model_dir: Path,
                                                                    tmp_path: Path) -> None:
    folder = _tree(tmp_path, 120)
    out = tmp_path / "wds"
    args = ["caption", str(folder), "--model", str(tiny_model_dir), "--format", "webdataset",
            "-o", str(out), "--shard-size", "10", *CAPTION]
    log = (tmp_path / "kill.log").open("w")
    proc = cli_popen(*args, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: len(list(out.glob("shard-*.tar"))) >= 3, 240, proc, step=0.005)
        assert proc.poll() is None, "the run finished before it could be killed"
    finally:
        kill(proc)
    finished = len(list(out.glob("shard-*.tar")))
    assert 3 <= finished < 12
    again = cli(*args, "--resume")
    assert again.returncode == 0, again.stderr[-2000:]
    rows = _samples(out)
    sources = [meta["source"] for _, meta, _ in rows]
    assert len(sources) == len(set(sources)) == 120, "an image is missing or in two samples"
    for _key, meta, data in rows:
        assert meta["error"] is None and data == Path(meta["source"]).read_bytes()
    assert not list(out.glob(".*.tmp")), "a temporary shard was left"
