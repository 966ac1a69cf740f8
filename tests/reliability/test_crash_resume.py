"""Crashes lose nothing: SIGKILL in the middle of training, captioning and index writing.

* ``img2text ssl train`` killed mid-run, then ``--resume``: the checkpoint left behind loads, no
  temporary file passes for a checkpoint, and the resumed run's losses equal an uninterrupted
  run's (same seed, CPU, one thread).
* ``img2text caption --format jsonl -o F`` killed mid-run, then ``--resume``: every image exactly
  once, no half-written line, every caption equal to an uninterrupted run's.
* ``write_index`` killed at random moments while rewriting an index: what is on disk is always
  the previous or the next index, readable, its embeddings matching its manifest.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.ssl import load_encoder
from tests.reliability.conftest import REPO, child_env, cli, cli_popen, kill
from tests.reliability.datagen import make_images

pytestmark = pytest.mark.slow

TRAIN = ["--img-size", "32", "--batch-size", "8", "--epochs", "4", "--projection-dim", "16",
         "--seed", "3", "--device", "cpu", "--quiet"]


def wait_for(predicate, timeout: float, proc: subprocess.Popen | None = None, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if proc is not None and proc.poll() is not None:
            return predicate()
        time.sleep(step)
    return False


def saved_epoch(run: Path) -> int:
    try:
        return int(json.loads((run / "config.json").read_text())["epoch"])
    except (OSError, ValueError, KeyError):
        return 0


def history(run: Path) -> list[dict]:
    return json.loads((run / "history.json").read_text())


@pytest.mark.timeout(400)
def test_ssl_training_killed_mid_epoch_resumes_to_the_same_losses(tmp_path: Path) -> None:
    data = tmp_path / "imgs"
    make_images(data, 64, size=32)
    full, part = tmp_path / "full", tmp_path / "part"
    ref = cli("ssl", "train", "--data", str(data), "--out", str(full), *TRAIN)
    assert ref.returncode == 0, ref.stderr[-2000:]
    epoch_seconds = history(full)[1]["seconds"]

    log = (tmp_path / "train.log").open("w")  # a file, not a pipe nobody reads (it would fill up)
    proc = cli_popen("ssl", "train", "--data", str(data), "--out", str(part), *TRAIN,
                     stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_for(lambda: saved_epoch(part) >= 1, 240, proc), "epoch 1 never finished"
        time.sleep(epoch_seconds * 0.5)  # well inside epoch 2
        killed_during = saved_epoch(part)
        assert proc.poll() is None, "the run finished before it could be killed"
    finally:
        kill(proc)
    assert killed_during < 4

    # What a crash leaves: a loadable checkpoint of a finished epoch, nothing that looks like one.
    survivors = sorted(p.name for p in part.iterdir())
    print("after SIGKILL:", survivors)
    for name in survivors:
        if name.endswith(".tmp"):
            assert name.startswith("."), f"temporary file {name} is not hidden"
            assert "checkpoint.safetensors" != name
    encoder = load_encoder(part, device="cpu")
    assert saved_epoch(part) >= 1 and encoder.weights_path.name == "checkpoint.safetensors"

    resumed = cli("ssl", "train", "--data", str(data), "--out", str(part), *TRAIN, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = history(full), history(part)
    assert [h["epoch"] for h in b] == [1, 2, 3, 4]
    for x, y in zip(a, b, strict=True):
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-6, abs=1e-7), (x, y)
    assert not [p.name for p in part.iterdir() if p.name.endswith(".tmp") and not p.name.startswith(".")]
    print("losses, uninterrupted:", [round(h["loss"], 6) for h in a])
    print("losses, killed+resumed:", [round(h["loss"], 6) for h in b])


CAPTION = ["--greedy", "--max-new-tokens", "8", "--batch-size", "2", "--device", "cpu",
           "--format", "jsonl", "--quiet"]


def read_jsonl(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n"), "the output ends with a half-written line"
    return [json.loads(line) for line in text.splitlines()]


@pytest.mark.timeout(400)
def test_caption_cli_killed_midway_resumes_without_loss_or_duplicates(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    make_images(folder, 200, size=24)
    # Awkward but legal names: spaces, unicode, a quote and a comma.
    for i, name in enumerate(["with space.png", "ünïcødé.png", 'quote".png', "comma,name.png"]):
        (folder / f"img_{i:05d}.png").rename(folder / name)
    ref_out, out = tmp_path / "ref.jsonl", tmp_path / "out.jsonl"
    ref = cli("caption", str(folder), "--model", str(tiny_model_dir), "-o", str(ref_out), *CAPTION)
    assert ref.returncode == 0, ref.stderr[-2000:]
    expected = {r["path"]: r["caption"] for r in read_jsonl(ref_out)}
    assert len(expected) == 200

    kills = 0
    for round_ in range(3):  # kill up to twice, then let it finish
        args = ["caption", str(folder), "--model", str(tiny_model_dir), "-o", str(out), *CAPTION]
        if round_:
            args.append("--resume")
        if round_ == 2:
            proc = cli(*args)
            assert proc.returncode == 0, proc.stderr[-2000:]
            break
        before = len(out.read_bytes().splitlines()) if out.exists() else 0
        log = (tmp_path / f"caption-{round_}.log").open("w")
        proc = cli_popen(*args, stdout=log, stderr=subprocess.STDOUT)
        try:
            target = before + random.Random(round_).randint(20, 60)
            wait_for(lambda t=target: out.exists() and out.read_bytes().count(b"\n") >= t, 240, proc, step=0.005)
            finished = proc.poll() is not None
        finally:
            kill(proc)
        if not finished:
            kills += 1
    assert kills >= 1, "the run always finished before the kill; use more images"

    rows = read_jsonl(out)
    paths = [r["path"] for r in rows]
    assert len(paths) == len(set(paths)), "an image was captioned twice"
    assert sorted(paths) == sorted(expected), "an image was lost"
    for row in rows:
        assert row["caption"] == expected[row["path"]], row


INDEX_WRITER = r"""
import sys, torch
from pathlib import Path
from core.search.storage import write_index
folder = Path(sys.argv[1])
version = int(sys.argv[2])
while True:
    version += 1
    emb = torch.full((2000, 64), float(version))
    write_index(folder, emb, {"images": [], "checkpoint": {}, "version_marker": version})
    print(version, flush=True)
"""


@pytest.mark.timeout(300)
def test_index_rewrites_killed_at_random_moments_leave_the_old_or_the_new_index(tmp_path: Path) -> None:
    import torch

    from core.search.storage import MANIFEST_NAME, read_index, write_index

    folder = tmp_path / "index"
    write_index(folder, torch.full((2000, 64), 0.0), {"images": [], "checkpoint": {}, "version_marker": 0})
    rng = random.Random(0)
    leftovers = []
    last = 0
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, "-c", INDEX_WRITER, str(folder), str(last)], cwd=REPO,
                                env=child_env(), stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            proc.stdout.readline()  # at least one complete write, then kill at a random moment
            time.sleep(rng.uniform(0.0, 0.15))
        finally:
            kill(proc)
        # Never refused: a kill before the manifest's rename keeps the old index, after it the new.
        emb, manifest, _ = read_index(folder)
        marker = manifest["version_marker"]
        assert marker >= last + 1, "a completed write was lost"
        assert torch.equal(emb, torch.full((2000, 64), float(marker))), "manifest and data disagree"
        last = marker
        visible = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
        # Besides the manifest only embeddings files: the live one, and those of killed writes
        # that never got committed (removed by the next complete write).
        assert MANIFEST_NAME in visible and manifest["embeddings"]["file"] in visible, visible
        others = [n for n in visible if n != MANIFEST_NAME]
        assert all(n.startswith("embeddings-") and n.endswith(".safetensors") for n in others), visible
        leftovers.append(len(others) - 1)
    print("unreferenced embeddings files after each SIGKILL:", leftovers)
    write_index(folder, torch.full((2000, 64), -1.0), {"images": [], "checkpoint": {}, "version_marker": -1})
    visible = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    assert len(visible) == 2, visible  # a complete write cleans up after the killed ones
