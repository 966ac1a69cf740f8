"""``img2text caption SOURCE --ray ADDRESS -o OUT --format webdataset`` on the 2-node loopback
cluster: tar shards read back by the real ``webdataset`` package and the project's tar source."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import core
from core.cli import main
from tests.core.distributed.helpers import val_images
from tests.reliability.conftest import require

pytestmark = pytest.mark.slow


def test_webdataset_over_ray_reads_back_byte_identical(ray_cluster, tiny_model_dir, tiny_coco_dir,
                                                       tmp_path, capsys) -> None:
    wds = require("webdataset")
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    images = val_images(tiny_coco_dir)[:5]
    for i, src in enumerate(images):
        shutil.copyfile(src, folder / ("sub" if i % 2 else ".") / src.name)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    out = tmp_path / "wds"
    args = ["caption", str(folder), "--ray", ray_cluster.address, "-o", str(out), "--format", "webdataset",
            "--shard-size", "4", "--model", str(tiny_model_dir), "--greedy", "--quiet", "--prefix", "ohwx, "]
    assert main(args) == 1  # the broken file is an error sample
    shards = sorted(out.glob("shard-*.tar"))
    assert [s.name for s in shards] == ["shard-00000.tar", "shard-00001.tar"]

    files = sorted(p for p in folder.rglob("*.jpg") if p.name != "broken.jpg")
    cap = core.get_captioner(str(tiny_model_dir), device="cpu")
    want = {p.resolve(): "ohwx, " + c for p, c in zip(files, cap.caption_batch(files, num_beams=1), strict=True)}
    samples = list(wds.WebDataset([str(s) for s in shards], shardshuffle=False))
    assert len(samples) == 6
    keys = {}
    for sample in samples:
        meta = json.loads(sample["json"])
        source = Path(meta["source"]) if Path(meta["source"]).is_absolute() else folder / meta["source"]
        if meta["error"] is not None:
            assert source.name == "broken.jpg" and "jpg" not in sample
            continue
        assert sample["jpg"] == source.read_bytes()
        assert sample["txt"].decode() == want[source.resolve()]
        keys[sample["__key__"]] = source
    assert sorted(p.resolve() for p in keys.values()) == sorted(want)

    items = list(core.datasets.iter_source_items(core.datasets.open_source(str(out / "shard-*.tar"))))
    assert sorted(i.key for i in items) == sorted(keys)
    for item in items:
        assert item.image == keys[item.key].read_bytes()

    # A rerun makes nothing again; other trigger words are refused.
    before = {s.name: s.stat().st_ino for s in shards}
    assert main([*args, "--resume"]) == 0  # nothing to do: every part is finished
    assert {s.name: s.stat().st_ino for s in sorted(out.glob("shard-*.tar"))} == before
    capsys.readouterr()
    assert main([*args[:-2], "--resume", "--prefix", "sks, "]) == 2
    assert "trigger words" in capsys.readouterr().err
