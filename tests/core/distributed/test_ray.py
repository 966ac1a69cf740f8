"""The Ray path on a real two-node cluster (one per test session, see conftest.py).

One file on purpose: ``make test`` hands whole files to two xdist workers, and each worker
session would start a cluster of its own. Captions equal ``core.caption_batch`` and embeddings
equal ``core.search.embed_images`` for every source kind (tar and parquet with hostile members
mixed in); a worker node or the driver SIGKILLed mid-run ends with every key exactly once.
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

import numpy as np
import pyarrow.parquet as pq
import pytest

import core
from core.cli import main
from core.datasets import iter_source_items, open_source
from core.distributed import (
    MANIFEST_NAME,
    RunInterruptedError,
    caption_to_parts,
    embed_to_parts,
    read_embedding_parts,
    read_parts,
)
from core.errors import ConfigError
from core.search import EmbeddingIndex, embed_images
from core.ssl import load_encoder
from tests.core.distributed.conftest import signal_session
from tests.core.distributed.helpers import val_images, write_parquet_files, write_tar_shards

# ------------------------------------------------------------------ captions, every source kind
BATCH = 4
SHARD = 8  # a multiple of BATCH: every shard's model batches are the local run's batches


def _run(source, out: Path, cluster, model: Path, **kw):
    return caption_to_parts(source, out, address=cluster.address, model=str(model), batch_size=BATCH,
                            shard_size=SHARD, concurrency=2, progress=False, **kw)


def _rows(out: Path) -> dict[str, dict]:
    rows = read_parts(out).to_pylist()
    keys = [r["key"] for r in rows]
    assert len(keys) == len(set(keys)), "a key appears twice"
    return {r["key"]: r for r in rows}


@pytest.fixture(scope="module")
def folder_run(ray_cluster, tiny_model_dir, tiny_coco_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("folder-run") / "out"
    summary = _run(tiny_coco_dir / "val2017", out, ray_cluster, tiny_model_dir)
    return out, summary


def test_every_val2017_caption_equals_caption_batch(folder_run, tiny_model_dir, tiny_coco_dir):
    out, summary = folder_run
    images = val_images(tiny_coco_dir)
    expected = core.caption_batch([str(p) for p in images], model=str(tiny_model_dir), batch_size=BATCH)
    rows = _rows(out)
    assert sorted(rows) == [p.name for p in images]  # folder keys: paths relative to the folder
    assert [rows[p.name]["caption"] for p in images] == expected
    assert all(rows[p.name]["path"] == str(p) and rows[p.name]["error"] is None for p in images)
    assert (summary.images, summary.errors, summary.parts_written) == (50, 0, 7)
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["complete"] and len(manifest["parts"]) == 7
    assert sum(p["rows"] for p in manifest["parts"].values()) == 50
    assert manifest["provenance"][0]["model"] == str(tiny_model_dir.resolve())
    assert manifest["settings"]["batch_size"] == BATCH


def test_a_prompted_family_captions_on_ray_like_caption_batch(ray_cluster, tiny_coco_dir, tmp_path):
    """A non-ViT-GPT2 family (the tiny BLIP) with a prompt: the actors use the family's defaults."""
    from tests.fixtures.tiny_families import tiny_family_model

    blip = tiny_family_model("blip")
    images = val_images(tiny_coco_dir)[:SHARD]
    folder = tmp_path / "few"
    folder.mkdir()
    for p in images:
        (folder / p.name).write_bytes(p.read_bytes())
    out = tmp_path / "out"
    summary = _run(folder, out, ray_cluster, blip, prompt="a photo of", max_new_tokens=6)
    expected = core.caption_batch([str(folder / p.name) for p in images], model=str(blip), batch_size=BATCH,
                                  prompt="a photo of", max_new_tokens=6)
    rows = _rows(out)
    assert [rows[p.name]["caption"] for p in images] == expected
    assert all(c.startswith("a photo of") for c in expected) and summary.errors == 0
    settings = json.loads((out / MANIFEST_NAME).read_text())["settings"]["generation"]
    assert (settings["prompt"], settings["num_beams"], settings["max_new_tokens"]) == ("a photo of", 1, 6)


def test_rerun_over_a_finished_output_does_nothing_and_says_so(folder_run, ray_cluster, tiny_model_dir,
                                                               tiny_coco_dir, capsys):
    out, _ = folder_run
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}
    summary = caption_to_parts(tiny_coco_dir / "val2017", out, address=ray_cluster.address,
                               model=str(tiny_model_dir), batch_size=BATCH, shard_size=SHARD)
    assert summary.nothing_to_do and summary.parts_written == 0 and summary.parts_skipped == 7
    assert "nothing to do" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")} == before


def test_resume_refuses_other_settings(folder_run, ray_cluster, tiny_model_dir, tiny_coco_dir):
    out, _ = folder_run
    with pytest.raises(ConfigError, match="batch_size: 4 before, 8 now"):
        caption_to_parts(tiny_coco_dir / "val2017", out, address=ray_cluster.address,
                         model=str(tiny_model_dir), batch_size=8, shard_size=SHARD, resume=True)
    with pytest.raises(ConfigError, match="num_beams"):
        _run(tiny_coco_dir / "val2017", out, ray_cluster, tiny_model_dir, resume=True, num_beams=2)


def _check_against_folder(out: Path, folder_out: Path, hostile: list[str]) -> dict[str, dict]:
    rows, reference = _rows(out), _rows(folder_out)
    by_stem = {Path(k).stem: r["caption"] for k, r in reference.items()}
    good = {k: r for k, r in rows.items() if not k.startswith("bad")}
    assert sorted(good) == sorted(by_stem)
    assert {k: r["caption"] for k, r in good.items()} == by_stem
    assert all(r["error"] is None for r in good.values())
    assert sorted(k for k in rows if k.startswith("bad")) == sorted(hostile)
    for key in hostile:
        assert rows[key]["error"] and rows[key]["caption"] == "", key
    return rows


def test_tar_shards_give_the_folder_results_and_error_rows(folder_run, ray_cluster, tiny_model_dir,
                                                           tiny_coco_dir, tmp_path):
    hostile = write_tar_shards(val_images(tiny_coco_dir), tmp_path / "shards", per_shard=SHARD)
    out = tmp_path / "out"
    summary = _run(str(tmp_path / "shards" / "{00000..00006}.tar"), out, ray_cluster, tiny_model_dir)
    rows = _check_against_folder(out, folder_run[0], hostile)
    assert summary.errors == len(hostile) == 7 * 4
    assert "not a regular file" in rows["bad0_link"]["error"]
    assert "empty" in rows["bad0_empty"]["error"]
    assert all(r["path"] is None for r in rows.values())  # tar members have no file of their own


def test_parquet_files_give_the_folder_results_and_error_rows(folder_run, ray_cluster, tiny_model_dir,
                                                              tiny_coco_dir, tmp_path):
    hostile = write_parquet_files(val_images(tiny_coco_dir), tmp_path / "tables", per_file=SHARD)
    out = tmp_path / "out"
    _run(tmp_path / "tables", out, ray_cluster, tiny_model_dir)
    rows = _check_against_folder(out, folder_run[0], hostile)
    assert "no image bytes and no path" in rows["bad0_null"]["error"]
    assert "not found" in rows["bad1_missing"]["error"]


def test_local_path_reads_every_source_like_the_ray_path(folder_run, tiny_model_dir, tiny_coco_dir,
                                                         tmp_path):
    """The single-process path (iter_source_items -> iter_caption_records) over a tar source."""
    images = val_images(tiny_coco_dir)[: 2 * SHARD]  # two shards keep it short
    hostile = write_tar_shards(images, tmp_path / "shards", per_shard=SHARD)
    source = open_source(str(tmp_path / "shards" / "*.tar"))
    captioner = core.get_captioner(str(tiny_model_dir))
    records = []
    for shard in source.shards:  # per shard, as an actor does: the same model batches
        items = [it for it in iter_source_items([shard]) if it.error is None]
        records += core.iter_caption_records(captioner, [(it.key, it.image) for it in items],
                                             batch_size=BATCH)
    reference = {Path(k).stem: r["caption"] for k, r in _rows(folder_run[0]).items()
                 if Path(k).stem in {p.stem for p in images}}
    ok = {r.path: r.caption for r in records if r.ok}
    assert ok == reference
    failed = {r.path for r in records if not r.ok} | {it.key for it in iter_source_items(source) if it.error}
    assert sorted(failed) == sorted(hostile)


# ------------------------------------------------------------------ embeddings
EMBED_BATCH = 8


def test_embeddings_from_tar_shards_equal_local_embeddings(ray_cluster, tiny_encoder_dir, tiny_coco_dir,
                                                           tmp_path):
    images = val_images(tiny_coco_dir)
    hostile = write_tar_shards(images, tmp_path / "shards", per_shard=16)
    out = tmp_path / "out"
    summary = embed_to_parts(str(tmp_path / "shards" / "*.tar"), out, checkpoint=tiny_encoder_dir,
                             address=ray_cluster.address, batch_size=EMBED_BATCH, concurrency=2,
                             progress=False)
    assert (summary.images, summary.errors) == (len(images) + len(hostile), len(hostile))

    vectors, keys, paths = read_embedding_parts(out)
    local = embed_images(load_encoder(tiny_encoder_dir, device="cpu"), images, batch_size=EMBED_BATCH)
    assert sorted(keys) == sorted(p.stem for p in images) and len(keys) == len(set(keys))
    order = [keys.index(p.stem) for p in images]
    assert vectors.shape == (len(images), 16) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors[order], local.embeddings.numpy(), atol=1e-5, rtol=0)
    assert paths == [None] * len(keys)  # tar members have no file of their own

    rows = read_parts(out).to_pylist()
    bad = {r["key"]: r for r in rows if r["key"].startswith("bad")}
    assert sorted(bad) == sorted(hostile)
    assert all(r["embedding"] is None and r["error"] for r in bad.values())


def test_ssl_embed_on_ray_builds_a_captioned_index_from_its_parts(ray_cluster, tiny_encoder_dir, tiny_model_dir,
                                                                   tiny_coco_dir, tmp_path, capsys):
    """`img2text ssl embed --ray ... --kind Flat --caption`: parts, a caption run, then the index in -o."""
    images = val_images(tiny_coco_dir)[:16]
    listing = tmp_path / "paths.txt"
    listing.write_text("".join(f"{p}\n" for p in images))
    out = tmp_path / "out"
    argv = ["ssl", "embed", "--data", str(listing), "--checkpoint", str(tiny_encoder_dir),
            "--ray", ray_cluster.address, "-o", str(out), "--batch-size", str(EMBED_BATCH),
            "--shard-size", "8", "--concurrency", "2", "--device", "cpu", "--kind", "Flat",
            "--caption", "--model", str(tiny_model_dir), "--caption-batch-size", "4", "--quiet"]
    assert main(argv) == 0
    assert "index of 16 images (16 with captions) built" in capsys.readouterr().out
    index = EmbeddingIndex.load(out, mmap=True)
    vectors, keys, _ = read_embedding_parts(out)
    assert index.kind == "Flat" and index.image_ids == keys == sorted(str(p) for p in images)
    np.testing.assert_array_equal(index.embeddings.numpy(), vectors)  # the parts' vectors, not re-encoded
    expected = core.get_captioner(str(tiny_model_dir), device="cpu").caption_batch(images, batch_size=4)
    assert [index.captions[index.row_of_id(str(p))] for p in images] == [[c] for c in expected]
    # The index records the checkpoint: an image query is embedded, and its gallery copy is "same".
    assert main(["ssl", "search", "--index", str(out), "--image", str(images[3]), "-k", "3",
                 "--format", "json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["same_image"]["image_id"] == str(images[3]) and found["kind"] == "Flat"
    assert str(images[3]) not in [r["image_id"] for r in found["results"]] and len(found["results"]) == 3
    assert main(["ssl", "search", "--index", str(out), "--text", expected[5], "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["captions"] == [expected[5]]
    assert main(argv) == 0  # a rerun over the finished output does nothing and says so
    assert "already up to date" in capsys.readouterr().out


def test_ssl_embed_on_ray_with_a_pretrained_encoder(ray_cluster, tiny_encoders, tiny_coco_dir, tmp_path, capsys):
    """`img2text ssl embed --ray --encoder FOLDER`: the parts hold the encoder's own normalised
    image features (as embedded locally), and the index searches by meaning through its text tower."""
    from core.search import load_pretrained

    images = val_images(tiny_coco_dir)[:16]
    listing = tmp_path / "paths.txt"
    listing.write_text("".join(f"{p}\n" for p in images))
    out = tmp_path / "out"
    argv = ["ssl", "embed", "--data", str(listing), "--encoder", str(tiny_encoders["clip"]),
            "--ray", ray_cluster.address, "-o", str(out), "--batch-size", str(EMBED_BATCH),
            "--shard-size", "8", "--concurrency", "2", "--device", "cpu", "--kind", "exact", "--quiet"]
    assert main(argv) == 0
    encoder = load_pretrained(tiny_encoders["clip"], device="cpu")
    vectors, keys, _ = read_embedding_parts(out)
    local = embed_images(encoder, [Path(k) for k in keys], batch_size=EMBED_BATCH)
    np.testing.assert_allclose(vectors, local.embeddings.numpy(), atol=1e-5, rtol=0)
    index = EmbeddingIndex.load(out)
    assert index.text_mode() == "semantic" and index.checkpoint.sha256 == encoder.sha256
    manifest = json.loads((out / "index.json").read_text())
    assert manifest["encoder"]["family"] == "clip"
    hits = index.find_text("a man on a horse", 3)
    text = encoder.embed_text(["a man on a horse"])[0].numpy()
    best = np.argsort(-(vectors @ text), kind="stable")[:3]
    assert [h.image_id for h in hits] == [keys[i] for i in best]



def test_ssl_embed_on_ray_with_an_int8_encoder(ray_cluster, tiny_encoders, tiny_coco_dir, tmp_path):
    """`--encoder-dtype int8` on CPU actors: each actor quantises the image tower (and compiles it,
    with the torchao kernel), and the parts hold the vectors the int8 encoder makes locally."""
    from core.search import load_pretrained

    images = val_images(tiny_coco_dir)[:12]
    listing = tmp_path / "paths.txt"
    listing.write_text("".join(f"{p}\n" for p in images))
    out = tmp_path / "out"
    argv = ["ssl", "embed", "--data", str(listing), "--encoder", str(tiny_encoders["clip"]),
            "--encoder-dtype", "int8", "--ray", ray_cluster.address, "-o", str(out),
            "--batch-size", str(EMBED_BATCH), "--shard-size", "6", "--concurrency", "1", "--kind", "exact",
            "--quiet"]
    assert main(argv) == 0
    vectors, keys, _ = read_embedding_parts(out)
    # locally in the actors' batches (a shard of 6 each): the fbgemm kernel's vectors depend on
    # their batch-mates (one activation scale a call), torchao's do not
    local = embed_images(load_pretrained(tiny_encoders["clip"], device="cpu", dtype="int8"),
                         [Path(k) for k in keys], batch_size=6)
    np.testing.assert_allclose(vectors, local.embeddings.numpy(), atol=1e-4, rtol=0)
    assert json.loads((out / "index.json").read_text())["preprocessing"]["precision"] == "int8"


# ------------------------------------------------------------------ faults (last: they restart a node)
FAULT_SHARD = 5  # 100 Tiny COCO images -> 20 shards: a run is still going when the fault comes
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
    raise AssertionError(f"{out}: fewer than {n} parts (driver alive: {alive()})")


def _check_exactly_once(out: Path, tiny_coco_dir: Path) -> None:
    expected = sorted(p.relative_to(tiny_coco_dir).as_posix() for p in tiny_coco_dir.rglob("*.jpg"))
    for part in out.glob("part-*.parquet"):
        pq.read_table(part)  # every part is a whole parquet file
    assert not list(out.glob(".part-*")), "a temporary part was left behind"
    keys = read_parts(out)["key"].to_pylist()
    assert sorted(keys) == expected  # every key, each exactly once
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["complete"] and len(manifest["parts"]) == len(expected) // FAULT_SHARD


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
                  shard_size=FAULT_SHARD, concurrency=2, progress=False)
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


def _cli(cluster, model: Path, source: Path, out: Path, *extra: str) -> list[str]:
    return ["caption", str(source), "--ray", cluster.address, "-o", str(out), "--format", "parquet",
            "--model", str(model), "--batch-size", "5", "--shard-size", str(FAULT_SHARD),
            "--concurrency", "2", "--quiet", *extra]


def test_cli_driver_killed_mid_run_then_resume(ray_cluster, tiny_model_dir, tiny_coco_dir, tmp_path):
    """``img2text caption SOURCE --ray ADDRESS -o OUT --format parquet`` as a driver process."""
    out = tmp_path / "out"
    args = _cli(ray_cluster, tiny_model_dir, tiny_coco_dir, out)
    driver = subprocess.Popen(
        [sys.executable, "-m", "core.cli", *args], stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])},
    )
    try:
        done = _wait_for_parts(out, 2, alive=lambda: driver.poll() is None)
    finally:
        signal_session(driver.pid, signal.SIGKILL)
        driver.wait(timeout=60)
    assert done < 20 and driver.returncode == -signal.SIGKILL
    kwargs = dict(address=ray_cluster.address, model=str(tiny_model_dir), batch_size=5,
                  shard_size=FAULT_SHARD, concurrency=2, progress=False)
    with pytest.raises(ConfigError, match="unfinished run"):  # the library names the run the same
        caption_to_parts(tiny_coco_dir, out, **kwargs)
    assert main(_cli(ray_cluster, tiny_model_dir, tiny_coco_dir, out, "--resume")) == 0
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["settings"]["batch_size"] == 5
    _check_exactly_once(out, tiny_coco_dir)
    summary = caption_to_parts(tiny_coco_dir, out, **kwargs)
    assert summary.nothing_to_do and summary.parts_skipped == 20
