"""Issue 23 item 10: the same image is named the same image on every kind of index, and an index
works from any working directory and after its folder moves together with its images."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from core.cli import EXIT_OK, EXIT_PARTIAL, main
from tests.core.cli.test_ssl_search_cli import _make_run
from tests.core.distributed.helpers import val_images, write_parquet_files, write_tar_shards


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _make_run(tmp_path_factory.mktemp("run") / "a", 0)


def _search(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(["ssl", "search", *argv, "--format", "json"]) == EXIT_OK
    return json.loads(capsys.readouterr().out)


def _embed(run: Path, data: str, out: Path) -> int:
    return main(["ssl", "embed", "--checkpoint", str(run), "--data", data, "--out", str(out), "--quiet"])


@pytest.mark.parametrize("kind", ["tar", "parquet"])
def test_a_copy_of_a_member_of_shards_is_the_same_image(kind: str, run: Path, tiny_coco_dir: Path,
                                                         tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images = val_images(tiny_coco_dir)[:8]
    if kind == "tar":
        write_tar_shards(images, tmp_path / "shards", per_shard=4)
        data = str(tmp_path / "shards" / "*.tar")
    else:
        write_parquet_files(images, tmp_path / "shards", per_file=4)
        data = str(tmp_path / "shards" / "*.parquet")
    assert _embed(run, data, tmp_path / "index") == EXIT_PARTIAL  # hostile rows skipped, the rest indexed
    capsys.readouterr()
    for member in (images[1], images[5]):  # parquet: a row of image bytes, a row naming its file
        copy = tmp_path / "upload.jpg"
        shutil.copy(member, copy)  # another file with the member's bytes
        found = _search(capsys, "--index", str(tmp_path / "index"), "--image", str(copy), "-k", "3")
        assert found["same_image"] is not None, found["results"][0]
        assert found["same_image"]["image_id"] == member.stem
        assert member.stem not in [r["image_id"] for r in found["results"]]  # not counted as a neighbour
        assert len(found["results"]) == 3


def test_an_index_without_recorded_hashes_reads_the_tar_member(run: Path, tiny_coco_dir: Path, tmp_path: Path) -> None:
    """Indexes built before hashes were recorded (or from Ray parts) fall back to the member's bytes."""
    from core.search import EmbeddingIndex, embed_one, load_checkpoint
    from core.workflows import find_neighbours

    images = val_images(tiny_coco_dir)[:4]
    write_tar_shards(images, tmp_path / "shards", per_shard=4)
    assert _embed(run, str(tmp_path / "shards" / "*.tar"), tmp_path / "index") == EXIT_PARTIAL
    index = EmbeddingIndex.load(tmp_path / "index")
    assert all(index.content_hashes)
    index.content_hashes = [None] * len(index)
    vector = embed_one(load_checkpoint(run), images[2])
    assert find_neighbours(index, vector, images[2].read_bytes(), 2).same.image_id == images[2].stem


def test_a_folder_index_works_from_anywhere_and_after_moving_with_its_images(
    run: Path, tiny_coco_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    project = tmp_path / "project"
    (project / "photos").mkdir(parents=True)
    for image in val_images(tiny_coco_dir)[:8]:
        shutil.copy(image, project / "photos" / image.name)
    query = sorted((project / "photos").iterdir())[3]
    copy = tmp_path / "upload.jpg"
    shutil.copy(query, copy)
    monkeypatch.chdir(project)
    assert _embed(run, "photos", Path("index")) == EXIT_OK  # typed relative to the build directory
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    plots: list[Path] = []
    for where, index in ((project, Path("index")), (elsewhere, project / "index"),
                         (elsewhere, tmp_path / "moved" / "index")):
        if index.parent.name == "moved" and not index.exists():
            shutil.move(project, tmp_path / "moved")  # the index folder moves with its images
        monkeypatch.chdir(where)
        capsys.readouterr()
        found = _search(capsys, "--index", str(index), "--image", str(copy), "-k", "3")
        assert found["same_image"] is not None and found["same_image"]["image_id"] == query.name, (where, index)
        assert all(Path(r["path"]).is_file() for r in found["results"]), found["results"]
        plots.append(tmp_path / f"plot-{len(plots)}.png")
        assert main(["ssl", "search", "--index", str(index), "--id", query.name, "-k", "3", "--plot",
                     str(plots[-1])]) == EXIT_OK
    shutil.rmtree(tmp_path / "moved" / "photos")  # the same plot without its pictures: blank tiles
    assert main(["ssl", "search", "--index", str(tmp_path / "moved" / "index"), "--id", query.name, "-k", "3",
                 "--plot", str(tmp_path / "blank.png")]) == EXIT_OK
    blank = (tmp_path / "blank.png").stat().st_size
    assert all(p.stat().st_size > blank for p in plots), [p.stat().st_size for p in plots] + [blank]
