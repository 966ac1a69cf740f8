"""Faults on a real cluster: a worker node SIGKILLed mid-run, the driver SIGKILLed mid-run.

Either the run completes through Ray's retries or it stops with a clear message and ``resume``
completes it; every input key ends up exactly once and every part file is whole.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from core.distributed import MANIFEST_NAME, RunInterruptedError, caption_to_parts, read_parts
from core.errors import ConfigError
from tests.core.distributed.conftest import signal_session

SHARD = 5  # 100 Tiny COCO images -> 20 shards: a run is still going when the fault comes
WAIT_S = 600  # for the first parts to appear on a loaded machine; never reached on a quiet one


def _parts_recorded(out: Path) -> int:
    try:
        return len(json.loads((out / MANIFEST_NAME).read_text())["parts"])
    except (OSError, ValueError, KeyError):
        return 0  # not written yet, or being replaced (atomic rename: retry)


def _wait_for_parts(out: Path, n: int, alive=lambda: True) -> int:
    deadline = time.time() + WAIT_S
    while time.time() < deadline and alive():
        done = _parts_recorded(out)
        if done >= n:
            return done
        time.sleep(0.1)
    raise AssertionError(f"{out}: fewer than {n} parts after {WAIT_S} s")


def _check_exactly_once(out: Path, tiny_coco_dir: Path) -> None:
    expected = sorted(p.relative_to(tiny_coco_dir).as_posix() for p in tiny_coco_dir.rglob("*.jpg"))
    for part in out.glob("part-*.parquet"):
        pq.read_table(part)  # every part is a whole parquet file
    assert not list(out.glob(".part-*")), "a temporary part was left behind"
    keys = read_parts(out)["key"].to_pylist()
    assert sorted(keys) == expected  # every key, each exactly once
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["complete"] and len(manifest["parts"]) == len(expected) // SHARD


def test_worker_node_killed_mid_run(ray_cluster, tiny_model_dir, tiny_coco_dir, tmp_path):
    out = tmp_path / "out"
    node = ray_cluster.workers[-1]
    at_kill: list[int] = []

    def kill_when_two_parts_are_in() -> None:
        at_kill.append(_wait_for_parts(out, 2))
        ray_cluster.kill_node(node)

    killer = threading.Thread(target=kill_when_two_parts_are_in, daemon=True)
    killer.start()
    kwargs = dict(address=ray_cluster.address, model=str(tiny_model_dir), batch_size=5,
                  shard_size=SHARD, concurrency=2, progress=False)
    try:
        try:
            summary = caption_to_parts(tiny_coco_dir, out, **kwargs)
            assert summary.parts_written == 20  # completed through Ray's retries
        except RunInterruptedError as exc:
            assert "--resume" in str(exc)  # stopped with a clear message: resume completes it
            killer.join(timeout=120)
            resumed = caption_to_parts(tiny_coco_dir, out, resume=True, **kwargs)
            assert resumed.parts_skipped >= 2
        killer.join(timeout=120)
        assert at_kill and at_kill[0] < 20, "the node was killed only after the run had finished"
        _check_exactly_once(out, tiny_coco_dir)
    finally:
        killer.join(timeout=120)
        ray_cluster.start_worker()  # later tests get their two nodes back
        ray_cluster.wait_nodes(2)


DRIVER = """
import sys
from core.distributed import caption_to_parts
caption_to_parts(sys.argv[1], sys.argv[2], address=sys.argv[3], model=sys.argv[4], batch_size=5,
                 shard_size=5, concurrency=2, progress=False)
"""


def test_driver_killed_mid_run_then_resume(ray_cluster, tiny_model_dir, tiny_coco_dir, tmp_path):
    out = tmp_path / "out"
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(tiny_coco_dir), str(out), ray_cluster.address,
         str(tiny_model_dir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])},
    )
    try:
        done = _wait_for_parts(out, 2, alive=lambda: driver.poll() is None)
    finally:
        signal_session(driver.pid, signal.SIGKILL)
        driver.wait(timeout=60)
    assert done < 20 and driver.returncode == -signal.SIGKILL
    kwargs = dict(address=ray_cluster.address, model=str(tiny_model_dir), batch_size=5,
                  shard_size=SHARD, concurrency=2, progress=False)
    with pytest.raises(ConfigError, match="unfinished run"):
        caption_to_parts(tiny_coco_dir, out, **kwargs)
    summary = caption_to_parts(tiny_coco_dir, out, resume=True, **kwargs)
    assert summary.parts_skipped >= done and summary.parts_written == 20 - summary.parts_skipped
    _check_exactly_once(out, tiny_coco_dir)
