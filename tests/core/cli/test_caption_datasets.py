"""`img2text caption` into training-set layouts: sidecars, imagefolder, webdataset; trigger words;
failed inputs as rows. Read back with the real `datasets` and `webdataset` packages."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import core
from core.cli import main
from tests.reliability.conftest import require

GREEDY = ["--greedy", "--quiet"]


@pytest.fixture()
def photos(tmp_path: Path, tiny_coco_dir: Path) -> Path:
    """Five COCO images in a nested tree, one with a non-ASCII name with a space."""
    root = tmp_path / "photos"
    (root / "sub" / "deeper").mkdir(parents=True)
    images = sorted((tiny_coco_dir / "val2017").glob("*.jpg"))[:5]
    names = [root / images[0].name, root / "sub" / images[1].name, root / "sub" / "ünï cødé.jpg",
             root / "sub" / "deeper" / images[3].name, root / images[4].name]
    for src, dest in zip(images, names, strict=True):
        shutil.copyfile(src, dest)
    return root


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def images_of(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.jpg"))


def expected(model: Path, paths: list[Path]) -> dict[Path, str]:
    cap = core.get_captioner(str(model), device="cpu")
    return dict(zip(paths, cap.caption_batch(paths, num_beams=1), strict=True))


def test_sidecars_next_to_images_skip_then_append_prepend_overwrite(capsys, tiny_model_dir: Path,
                                                                    photos: Path) -> None:
    base = ["caption", str(photos), "--model", str(tiny_model_dir), *GREEDY, "--sidecar"]
    code, err = run(capsys, *base, "--prefix", "ohwx, ")
    assert code == 0, err
    want = expected(tiny_model_dir, images_of(photos))
    for image, caption in want.items():
        assert image.with_suffix(".txt").read_text(encoding="utf-8") == f"ohwx, {caption}\n"
    assert "5 written, 0 skipped, 0 failed" in err

    hand = photos / "sub" / "ünï cødé.txt"
    hand.write_text("hand written", encoding="utf-8")
    untouched = {p: p.stat().st_ino for p in photos.rglob("*.txt")}
    code, err = run(capsys, *base)  # the default: existing caption files are never replaced
    assert code == 0 and "0 written, 5 skipped" in err
    assert {p: p.stat().st_ino for p in photos.rglob("*.txt")} == untouched
    assert hand.read_text(encoding="utf-8") == "hand written"

    new = want[photos / "sub" / "ünï cødé.jpg"]
    assert run(capsys, *base, "--append")[0] == 0
    assert hand.read_text(encoding="utf-8") == f"hand written, {new}\n"
    code, err = run(capsys, *base, "--append")  # a rerun adds nothing twice
    assert hand.read_text(encoding="utf-8") == f"hand written, {new}\n" and "0 written" in err
    hand.write_text("hand", encoding="utf-8")
    assert run(capsys, *base, "--prepend")[0] == 0
    assert hand.read_text(encoding="utf-8") == f"{new}, hand\n"
    assert run(capsys, *base, "--overwrite", "--suffix", ", photo")[0] == 0
    for image, caption in want.items():
        assert image.with_suffix(".txt").read_text(encoding="utf-8") == f"{caption}, photo\n"


def test_sidecar_extension_and_refusals(capsys, tiny_model_dir: Path, photos: Path, tmp_path: Path) -> None:
    base = ["caption", str(photos), "--model", str(tiny_model_dir), *GREEDY, "--sidecar"]
    assert run(capsys, *base, "--caption-extension", "caption")[0] == 0
    assert len(list(photos.rglob("*.caption"))) == 5 and not list(photos.rglob("*.txt"))
    code, err = run(capsys, *base, "--caption-extension", ".jpg")
    assert code == 2 and "image extension" in err
    code, err = run(capsys, *base, "--format", "jsonl")
    assert code == 2 and "--sidecar" in err
    code, err = run(capsys, "caption", str(photos), "--append", "-o", str(tmp_path / "x.jsonl"))
    assert code == 2 and "--sidecar" in err


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[str]:
    """``folder`` on a read-only bind mount (root), else with its write permission removed."""
    if os.geteuid() == 0 and shutil.which("mount"):
        done = subprocess.run(["mount", "--bind", "-o", "ro", str(folder), str(folder)],
                              capture_output=True)
        if done.returncode == 0:
            try:
                yield "mount"
            finally:
                subprocess.run(["umount", str(folder)], check=True)
            return
    modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")] if p.is_dir()}
    for p in modes:
        p.chmod(0o555)
    try:
        yield "chmod"
    finally:
        for p, mode in modes.items():
            p.chmod(mode)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_read_only_source_with_out_dir_mirrors_the_tree(capsys, tiny_model_dir: Path, photos: Path,
                                                        tmp_path: Path) -> None:
    before = snapshot(photos)
    out = tmp_path / "captions"
    with read_only(photos) as how:
        probe = photos / "probe.txt"
        if how == "mount" or os.geteuid() != 0:
            with pytest.raises(OSError):
                probe.write_text("x")
        code, err = run(capsys, "caption", str(photos), "--model", str(tiny_model_dir), *GREEDY,
                        "--sidecar", "-o", str(out))
    assert code == 0, err
    assert snapshot(photos) == before
    want = expected(tiny_model_dir, images_of(photos))
    got = {p.relative_to(out).as_posix(): p.read_text(encoding="utf-8") for p in out.rglob("*.txt")}
    assert got == {p.relative_to(photos).with_suffix(".txt").as_posix(): c + "\n" for p, c in want.items()}
    meta = json.loads((tmp_path / "captions.meta.json").read_text())
    assert meta["format"] == "sidecar" and meta["prefix"] == "" and meta["suffix"] == ""


def test_imagefolder_loads_in_datasets_with_a_text_column(capsys, tiny_model_dir: Path, photos: Path,
                                                          tmp_path: Path) -> None:
    datasets = require("datasets")
    out = tmp_path / "hf"
    code, err = run(capsys, "caption", str(photos), "--model", str(tiny_model_dir), *GREEDY,
                    "--format", "imagefolder", "-o", str(out), "--prefix", "ohwx, ")
    assert code == 0, err
    want = {p.relative_to(photos).as_posix(): f"ohwx, {c}"
            for p, c in expected(tiny_model_dir, images_of(photos)).items()}
    ds = datasets.load_dataset("imagefolder", data_dir=str(out), split="train",
                               cache_dir=str(tmp_path / "hf-cache"))
    assert set(ds.column_names) == {"image", "text"}
    rows = list(ds)
    assert len(rows) == 5
    by_text = sorted((r["text"], r["image"].size) for r in rows)
    assert [t for t, _ in by_text] == sorted(want.values())
    for rel in want:  # copies, byte for byte
        assert (out / rel).read_bytes() == (photos / rel).read_bytes()

    # Resume: a torn last row is cut, the missing rows appended, nothing listed twice.
    meta = out / "metadata.jsonl"
    lines = meta.read_text(encoding="utf-8").splitlines(keepends=True)
    meta.write_text("".join(lines[:2]) + lines[2][:9], encoding="utf-8")
    base = ["caption", str(photos), "--model", str(tiny_model_dir), *GREEDY, "--format", "imagefolder",
            "-o", str(out), "--prefix", "ohwx, "]
    code, err = run(capsys, *base[:-2])
    assert code == 2 and "--resume" in err  # no silent mixing or replacing
    code, err = run(capsys, *base[:-2], "--resume")
    assert code == 2 and "prefix" in err  # other trigger words are refused
    code, err = run(capsys, *base, "--resume")
    assert code == 0 and "3 written, 2 skipped" in err
    rows = [json.loads(line) for line in meta.read_text(encoding="utf-8").splitlines()]
    assert sorted(r["file_name"] for r in rows) == sorted(want)
    assert {r["file_name"]: r["text"] for r in rows} == want


def test_imagefolder_link_and_images_already_inside(capsys, tiny_model_dir: Path, photos: Path,
                                                    tmp_path: Path) -> None:
    out = tmp_path / "linked"
    assert run(capsys, "caption", str(photos), "--model", str(tiny_model_dir), *GREEDY,
               "--format", "imagefolder", "-o", str(out), "--link")[0] == 0
    for image in images_of(photos):
        assert (out / image.relative_to(photos)).stat().st_ino == image.stat().st_ino
    # Captioning a folder into itself writes only metadata.jsonl.
    before = snapshot(photos)
    assert run(capsys, "caption", str(photos), "--model", str(tiny_model_dir), *GREEDY,
               "--format", "imagefolder", "-o", str(photos))[0] == 0
    after = snapshot(photos)
    assert set(after) - set(before) == {"metadata.jsonl"}
    names = [json.loads(line)["file_name"] for line in (photos / "metadata.jsonl").read_text().splitlines()]
    assert sorted(names) == sorted(p.relative_to(photos).as_posix() for p in images_of(photos))


def members(tar_path: Path) -> dict[str, bytes]:
    import tarfile

    with tarfile.open(tar_path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


def test_webdataset_shards_read_back_by_webdataset_and_the_tar_source(capsys, tiny_model_dir: Path,
                                                                     photos: Path, tmp_path: Path) -> None:
    wds = require("webdataset")
    bad = photos / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff not a jpeg")
    out = tmp_path / "wds"
    code, err = run(capsys, "caption", str(photos), "--model", str(tiny_model_dir), *GREEDY,
                    "--format", "webdataset", "-o", str(out), "--shard-size", "2", "--suffix", ", photo")
    assert code == 1 and "5 written, 0 skipped, 1 failed" in err
    shards = sorted(out.glob("shard-*.tar"))
    assert [s.name for s in shards] == ["shard-00000.tar", "shard-00001.tar", "shard-00002.tar"]
    good = [p for p in images_of(photos) if p != bad]
    want = {str(p): c + ", photo" for p, c in expected(tiny_model_dir, good).items()}

    samples = list(wds.WebDataset([str(s) for s in shards], shardshuffle=False))
    assert len(samples) == 6
    seen = {}
    for sample in samples:
        meta = json.loads(sample["json"])
        if meta["error"] is not None:
            assert meta["source"] == str(bad) and "jpg" not in sample and "txt" not in sample
            continue
        assert sample["jpg"] == Path(meta["source"]).read_bytes()  # the original bytes
        assert sample["txt"].decode() == want[meta["source"]] == meta["caption"]
        assert meta["model"] == str(tiny_model_dir)
        seen[meta["source"]] = sample["__key__"]
    assert sorted(seen) == sorted(want)

    # The project's own tar source reads the same images back, byte for byte.
    source = core.datasets.open_source(str(out / "shard-*.tar"))
    items = list(core.datasets.iter_source_items(source))
    by_key = {i.key: i.image for i in items}
    assert len(items) == 5 and all(i.error is None for i in items)
    for path, key in seen.items():
        assert by_key[key] == Path(path).read_bytes()

    # --resume retries the failed input (now fixed) and writes no sample twice.
    shutil.copyfile(images_of(photos)[0], bad)
    args = ["caption", str(photos), "--model", str(tiny_model_dir), *GREEDY, "--format", "webdataset",
            "-o", str(out), "--shard-size", "2", "--suffix", ", photo"]
    code, err = run(capsys, *args, "--resume")
    assert code == 0 and "1 written, 5 skipped, 0 failed" in err, err
    metas = [json.loads(d) for s in sorted(out.glob("shard-*.tar")) for n, d in members(s).items()
             if n.endswith(".json")]
    sources = [m["source"] for m in metas]
    assert len(sources) == len(set(sources)) == 6 and all(m["error"] is None for m in metas)

    # --overwrite starts the folder over: the old shards go, nothing is listed twice.
    code, err = run(capsys, *args[:-4], "--shard-size", "4", "--overwrite")
    assert code == 0, err
    assert [s.name for s in sorted(out.glob("shard-*.tar"))] == ["shard-00000.tar", "shard-00001.tar"]
    sources = [json.loads(d)["source"] for s in sorted(out.glob("shard-*.tar"))
               for n, d in members(s).items() if n.endswith(".json")]
    assert len(sources) == len(set(sources)) == 6


def test_failed_inputs_are_rows_with_their_error_and_resume_retries_them(
        capsys, tiny_model_dir: Path, photos: Path, tmp_path: Path) -> None:
    bad = photos / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff not a jpeg")
    for fmt in ("jsonl", "csv"):
        out = tmp_path / f"caps.{fmt}"
        args = ["caption", str(photos), "--model", str(tiny_model_dir), *GREEDY, "--format", fmt, "-o", str(out)]
        assert run(capsys, *args)[0] == 1
        text = out.read_text(encoding="utf-8")
        rows = ([json.loads(line) for line in text.splitlines()] if fmt == "jsonl"
                else list(csv.DictReader(io.StringIO(text))))
        assert len(rows) == 6
        (failed,) = [r for r in rows if r.get("error")]
        assert failed["path"] == str(bad) and failed["caption"] == ""
        assert "not a supported image" in failed["error"]
        # The same file the apps' download makes for these records.
        records = core.captioning.read_done(out, fmt)
        assert core.captioning.to_string(records, fmt) == text
        shutil.copyfile(images_of(photos)[0], bad)
        assert run(capsys, *args, "--resume")[0] == 0
        text = out.read_text(encoding="utf-8")
        rows = ([json.loads(line) for line in text.splitlines()] if fmt == "jsonl"
                else list(csv.DictReader(io.StringIO(text))))
        assert len(rows) == 6 and not any(r.get("error") for r in rows)
        assert sorted(r["path"] for r in rows) == sorted(map(str, images_of(photos)))
        assert out.read_text(encoding="utf-8").count("path,caption,error") == (fmt == "csv")
        bad.write_bytes(b"\xff\xd8\xff not a jpeg")
