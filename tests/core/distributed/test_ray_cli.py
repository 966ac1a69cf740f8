"""The ``--ray`` path as a user meets it: connecting, the terminal, --overwrite, resume, Ray
Client addresses, losing the whole cluster.

The quiet/overwrite/resume tests share one run on the session's two-node cluster (conftest.py);
the cluster-loss test starts a one-node cluster of its own and SIGKILLs it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.cli import main
from core.distributed import MANIFEST_NAME, caption_to_parts, read_parts
from core.errors import ConfigError
from tests.core.distributed.conftest import free_port, require_ray, signal_session, start_cluster
from tests.core.distributed.helpers import val_images, write_tar_shards

REPO = Path(__file__).resolve().parents[3]
BATCH = 4


def _driver(argv: list[str]) -> subprocess.Popen:
    """``img2text ARGV`` as its own process (own session), output captured."""
    return subprocess.Popen([sys.executable, "-m", "core.cli", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})


def _finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        signal_session(proc.pid, signal.SIGKILL)  # nothing of this driver outlives the test
    return proc.returncode, out, err


def _caption_argv(source: str, address: str, out: Path, model: Path, *extra: str) -> list[str]:
    return ["caption", source, "--ray", address, "-o", str(out), "--format", "parquet", "--model",
            str(model), "--batch-size", str(BATCH), "--concurrency", "1", *extra]


@pytest.mark.timeout(300)
def test_unreachable_address_fails_fast_and_leaves_no_trace(tiny_model_dir, tiny_coco_dir, tmp_path,
                                                              capsys):
    require_ray()
    out = tmp_path / "out"
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    code = main(_caption_argv(str(tiny_coco_dir / "val2017"), address, out, tiny_model_dir,
                              "--ray-connect-timeout", "3", "--quiet"))
    waited = time.monotonic() - started
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"cannot connect to a Ray cluster at '{address}'" in err and "ray start --head" in err
    assert "within 3 s" in err
    assert not out.exists()  # the corrected rerun is not refused as "an unfinished run"
    assert waited < 120  # bounded (Ray alone retries for many minutes); loose: a loaded machine


# ------------------------------------------------------------------ one run on the session cluster
@pytest.fixture(scope="module")
def quiet_run(ray_cluster, tiny_model_dir, tiny_coco_dir, tmp_path_factory):
    """``img2text caption 'shards/{00000..00001}.tar' --ray ... --quiet`` over 8 images and 8
    hostile members, as a driver process."""
    root = tmp_path_factory.mktemp("quiet-run")
    hostile = write_tar_shards(val_images(tiny_coco_dir)[:8], root / "shards", per_shard=4)
    source = str(root / "shards" / "{00000..00001}.tar")
    out = root / "out"
    result = _finish(_driver(_caption_argv(source, ray_cluster.address, out, tiny_model_dir, "--quiet")))
    keys = sorted([p.stem for p in val_images(tiny_coco_dir)[:8]] + hostile)
    return out, source, hostile, result, keys


def test_quiet_ray_run_prints_only_the_projects_lines_and_lists_bad_keys(quiet_run):
    out, _, hostile, (code, stdout, stderr), keys = quiet_run
    assert code == 1, stderr  # error rows
    assert stdout == ""
    lines = stderr.splitlines()
    assert all(line.startswith("img2text: skipped ") for line in lines), stderr  # no Ray lines
    listed = {line.removeprefix("img2text: skipped ").split(":", 1)[0] for line in lines}
    assert listed == set(hostile) and len(lines) == len(hostile)
    assert sorted(read_parts(out)["key"].to_pylist()) == keys


def test_overwrite_starts_over_removing_only_the_runs_files(quiet_run, ray_cluster, tiny_model_dir):
    out, source, _, _, keys = quiet_run
    (out / "notes.txt").write_text("the user's own file")
    shutil.copy(out / "part-00000.parquet", out / "part-00005.parquet")  # a part of an earlier, larger run
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("part-0000[01].parquet")}
    code, _, stderr = _finish(_driver(_caption_argv(source, ray_cluster.address, out, tiny_model_dir,
                                                    "--overwrite", "--verbose")))
    assert code == 1, stderr
    assert "nothing to do" not in stderr and "2 parts written (0 already done)" in stderr
    after = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}
    assert sorted(after) == sorted(before) and all(after[n] != before[n] for n in before)
    assert (out / "notes.txt").read_text() == "the user's own file"
    assert json.loads((out / MANIFEST_NAME).read_text())["complete"]
    assert sorted(read_parts(out)["key"].to_pylist()) == keys  # the stale part-00005 is gone
    # --verbose lets Ray's own lines through (here: Ray Data's execution lines)
    assert any("streaming_executor" in line or "Ray" in line and not line.startswith("img2text")
               for line in stderr.splitlines()), stderr


def test_resume_takes_the_same_source_typed_another_way(quiet_run, ray_cluster, tiny_model_dir,
                                                        monkeypatch, tmp_path):
    out, source, _, _, _ = quiet_run
    run = dict(address=ray_cluster.address, model=str(tiny_model_dir), batch_size=BATCH,
               concurrency=1, progress=False)
    shards = Path(source).parent
    monkeypatch.chdir(shards.parent)  # the same shards, typed relative to another directory
    summary = caption_to_parts("shards/{00000..00001}.tar", out, resume=True, **run)
    assert summary.nothing_to_do and summary.parts_skipped == 2
    monkeypatch.chdir(shards)
    assert caption_to_parts("./{00000..00001}.tar", out, **run).nothing_to_do
    # Really another source (same file names and sizes elsewhere): refused, naming both forms.
    shutil.copytree(shards, tmp_path / "copy")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="another|other settings") as refused:
        caption_to_parts("copy/{00000..00001}.tar", out, resume=True, **run)
    message = str(refused.value)
    assert f"'{source}' before" in message
    assert f"'{tmp_path / 'copy' / '{00000..00001}.tar'}' (typed 'copy/{{00000..00001}}.tar') now" in message


def test_ray_client_addresses_are_refused_before_anything_is_made(tiny_model_dir, tiny_coco_dir,
                                                                  tmp_path, capsys):
    """Ray Data cannot run a job through Ray Client (Ray 2.60: "'Worker' object has no attribute
    'core_worker'"), so a ``ray://`` address is refused at once with what to do instead."""
    require_ray()
    out = tmp_path / "out"
    code = main(_caption_argv(str(tiny_coco_dir / "val2017"), f"ray://127.0.0.1:{free_port()}", out,
                              tiny_model_dir, "--quiet"))
    err = capsys.readouterr().err
    assert code == 2 and "Ray Client addresses do not work" in err and "ray job submit" in err, err
    assert not out.exists()


# ------------------------------------------------------------------ a cluster of this module
@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory):
    """One head (2 CPUs) of this module only: the test below kills it."""
    require_ray()
    cluster = start_cluster(tmp_path_factory.mktemp("own-ray-logs"), workers=0, head_cpus=2)
    try:
        yield cluster
    finally:
        cluster.stop()


FAULT_SHARD = 5  # 50 val2017 images -> 10 parts: the run is still going when the cluster dies


def test_whole_cluster_killed_mid_run_says_what_is_kept(own_cluster, tiny_model_dir, tiny_coco_dir,
                                                         tmp_path):
    cluster = own_cluster
    out = tmp_path / "out"
    driver = _driver(_caption_argv(str(tiny_coco_dir / "val2017"), cluster.address, out, tiny_model_dir,
                                   "--shard-size", str(FAULT_SHARD), "--quiet"))
    try:
        deadline = time.time() + 600
        while _recorded(out) < 2 and driver.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        assert driver.poll() is None and _recorded(out) >= 2, "the run ended before the fault"
        cluster.kill_node(cluster.head)  # SIGKILL the whole (one-node) cluster this module started
        killed = time.monotonic()
        code, stdout, stderr = _finish(driver, timeout=120)
        took = time.monotonic() - killed
    finally:
        signal_session(driver.pid, signal.SIGKILL)
    kept = _recorded(out)
    assert code == 2, stderr
    assert f"{kept} of 10 parts kept in {out}; rerun with --resume" in stderr
    assert [line for line in stderr.splitlines() if line.strip()][0].startswith("img2text: error:"), stderr
    assert took < 60  # before Ray's own 60 s GCS timeout ends the process with status 1
    assert len(list(out.glob("part-*.parquet"))) == kept
    assert len(read_parts(out)) == kept * FAULT_SHARD  # the kept parts are whole parquet files


def _recorded(out: Path) -> int:
    try:
        return len(json.loads((out / MANIFEST_NAME).read_text())["parts"])
    except (OSError, ValueError, KeyError):
        return 0
