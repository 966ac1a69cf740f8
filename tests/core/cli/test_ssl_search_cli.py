"""`img2text ssl embed|search|eval` end to end on Tiny COCO val2017 with tiny 32 px checkpoints."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from core.cli import EXIT_PARTIAL, main

SPLIT = "val2017"
QUERY_ID = "397133"


def _make_run(folder: Path, seed: int, **overrides: object) -> Path:
    """A checkpoint written through core.ssl's own API (no training: the CLI is under test)."""
    from core.ssl.checkpoint import save_checkpoint
    from core.ssl.config import SSLConfig
    from core.ssl.models import build_model

    config = SSLConfig(
        img_size=32, batch_size=8, num_epochs=1, seed=seed, out_dir=folder, **overrides
    )  # type: ignore[arg-type]
    torch.manual_seed(seed)
    model = build_model(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    save_checkpoint(folder, model, optimizer, config, epoch=1, rng_state=torch.get_rng_state())
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("runs")
    return _make_run(base / "a", 0), _make_run(base / "b", 1)


@pytest.fixture(scope="module")
def index_dir(
    runs: tuple[Path, Path], tiny_coco_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("idx") / "index"
    code = main(
        [
            "ssl",
            "embed",
            "--checkpoint",
            str(runs[0]),
            "--data",
            str(tiny_coco_dir),
            "--split",
            SPLIT,
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    return out


def test_embed_writes_an_index(index_dir: Path) -> None:
    from core.search import EmbeddingIndex

    index = EmbeddingIndex.load(index_dir)
    assert len(index) == 50 and index.embeddings.shape[0] == 50
    assert str(index.relative_paths[0]).startswith(f"{SPLIT}/") and index.captions[0]
    assert index.checkpoint.config["img_size"] == 32


def test_search_by_id_with_plot(
    index_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "sample.png"
    assert (
        main(
            [
                "ssl",
                "search",
                "--index",
                str(index_dir),
                "--id",
                QUERY_ID,
                "-k",
                "3",
                "--plot",
                str(png),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert len(rows) == 3
    assert all(line.split()[2] != QUERY_ID for line in rows)  # never its own result
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _search(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    assert main(["ssl", "search", *argv]) == 0
    return capsys.readouterr()


def test_search_by_image_reports_the_gallery_copy_as_the_same_image(
    index_dir: Path, tiny_coco_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tiny_coco_dir / SPLIT / f"{int(QUERY_ID):012d}.jpg"
    by_id = json.loads(_search(["--index", str(index_dir), "--id", QUERY_ID, "-k", "3", "--format",
                                "json"], capsys)[0])["results"]
    copy = tmp_path / "upload.jpg"  # another file with the same bytes: found by content hash
    shutil.copy(image, copy)
    for query in (image, copy):
        data = json.loads(_search(["--index", str(index_dir), "--image", str(query), "--format", "json",
                                   "-k", "3"], capsys)[0])
        same = data["same_image"]
        assert same["image_id"] == int(QUERY_ID) and same["score"] == pytest.approx(1.0, abs=1e-4)
        results = data["results"]
        assert [r["rank"] for r in results] == [1, 2, 3]
        assert int(QUERY_ID) not in [r["image_id"] for r in results]  # not counted as a neighbour
        assert [r["image_id"] for r in results] == [r["image_id"] for r in by_id]
    out = _search(["--index", str(index_dir), "--image", str(copy), "-k", "2"], capsys)[0]
    assert f"same image in the index: id {QUERY_ID}" in out
    assert len([line for line in out.splitlines() if line.strip()[:1].isdigit()]) == 2
    # A different image (the same photo, mirrored) has no gallery copy: k neighbours, none "same".
    from PIL import Image, ImageOps

    mirrored = tmp_path / "mirrored.png"
    ImageOps.mirror(Image.open(image)).save(mirrored)
    data = json.loads(_search(["--index", str(index_dir), "--image", str(mirrored), "--format", "json",
                               "-k", "3"], capsys)[0])
    assert data["same_image"] is None and len(data["results"]) == 3
    assert "same image" not in _search(["--index", str(index_dir), "--image", str(mirrored)], capsys)[0]


def test_eval_prints_three_methods(
    runs: tuple[Path, Path], tiny_coco_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "ssl",
                "eval",
                "--checkpoint",
                str(runs[0]),
                "--data",
                str(tiny_coco_dir),
                "--split",
                SPLIT,
                "--format",
                "json",
            ]
        )
        == 0
    )
    table = json.loads(capsys.readouterr().out)
    assert [r["method"] for r in table["rows"]] == [
        "trained (conv)",
        "random init (conv)",
        "raw pixels 32x32",
    ]
    assert table["n_images"] == 50 and table["k"] == 5
    for row in table["rows"]:
        assert 0 <= row["p_at_1"] <= 1 and 0 <= row["map_at_k"] <= 1
        assert row["chance"] == pytest.approx(table["rows"][0]["chance"])
    assert (
        main(["ssl", "eval", "--checkpoint", str(runs[0]), "--data", str(tiny_coco_dir), "-k", "3"])
        == 0
    )
    text = capsys.readouterr().out
    assert "P@3" in text and "mAP@3" in text and "raw pixels 32x32" in text
    # the mAP@k definition in use (issue #11) and how the usual tools differ from it
    formula = next(line for line in text.splitlines() if line.startswith("mAP@k ="))
    assert "AP@k = S / min(k, R)" in formula and "precision@i over the ranks i <= k" in formula
    assert "torchmetrics RetrievalMAP(top_k=k) divides S by the relevant images found in the top k" in formula
    assert "trec_eval's map cut at k divides S by R" in formula


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("img2text: error:") and "Traceback" not in err
    return err


def test_setup_errors_exit_2(
    runs: tuple[Path, Path],
    index_dir: Path,
    tiny_coco_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    a, b = (str(r) for r in runs)
    idx = str(index_dir)
    assert "data folder not found" in _error(
        [
            "ssl",
            "embed",
            "--checkpoint",
            a,
            "--data",
            str(tmp_path / "no"),
            "--out",
            str(tmp_path / "i"),
        ],
        capsys,
    )
    assert "checkpoint not found" in _error(
        [
            "ssl",
            "embed",
            "--checkpoint",
            str(tmp_path / "nock"),
            "--data",
            str(tiny_coco_dir),
            "--out",
            str(tmp_path / "i"),
        ],
        capsys,
    )
    assert "query image not found" in _error(
        ["ssl", "search", "--index", idx, "--image", str(tmp_path / "x.jpg")], capsys
    )
    assert "unknown image id" in _error(["ssl", "search", "--index", idx, "--id", "42"], capsys)
    assert "k must be" in _error(
        ["ssl", "search", "--index", idx, "--id", QUERY_ID, "-k", "0"], capsys
    )
    image = str(tiny_coco_dir / SPLIT / f"{int(QUERY_ID):012d}.jpg")
    assert "stale" in _error(
        ["ssl", "search", "--index", idx, "--image", image, "--checkpoint", b], capsys
    )
    assert "index not found" in _error(
        ["ssl", "search", "--index", str(tmp_path / "noidx"), "--id", "1"], capsys
    )
    wrong_split = ["--data", str(tiny_coco_dir), "--split", "test2017"]
    assert "instances_test2017.json" in _error(
        ["ssl", "embed", "--checkpoint", a, *wrong_split, "--out", str(tmp_path / "i")], capsys
    )
    assert "instances_test2017.json" in _error(
        ["ssl", "eval", "--checkpoint", a, *wrong_split], capsys
    )
    # eval needs instance annotations: a plain image folder has none
    plain = tmp_path / "plain"
    plain.mkdir()
    shutil.copy(image, plain / "a.jpg")
    shutil.copy(image, plain / "b.jpg")
    assert "no COCO instance annotations" in _error(
        ["ssl", "eval", "--checkpoint", a, "--data", str(plain)], capsys
    )


def test_corrupt_and_stale_index_exit_2(
    runs: tuple[Path, Path],
    index_dir: Path,
    tiny_coco_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(index_dir, broken)
    emb_name = json.loads((broken / "index.json").read_text())["embeddings"]["file"]
    (broken / emb_name).write_bytes(b"\0" * 10)
    assert emb_name in _error(
        ["ssl", "search", "--index", str(broken), "--id", QUERY_ID], capsys
    )
    # the run folder is retrained in place after indexing: its weights no longer match
    moved = tmp_path / "run"
    shutil.copytree(runs[0], moved)
    stale = tmp_path / "stale"
    assert (
        main(
            [
                "ssl",
                "embed",
                "--checkpoint",
                str(moved),
                "--data",
                str(tiny_coco_dir),
                "--out",
                str(stale),
                "--quiet",
            ]
        )
        == 0
    )
    capsys.readouterr()
    shutil.copy(runs[1] / "checkpoint.safetensors", moved / "checkpoint.safetensors")
    image = str(tiny_coco_dir / SPLIT / f"{int(QUERY_ID):012d}.jpg")
    assert "stale" in _error(["ssl", "search", "--index", str(stale), "--image", image], capsys)


@pytest.mark.parametrize("cmd", ["embed", "search", "eval"])
def test_help_lists_defaults(cmd: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["ssl", cmd, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "(default:" in out and "--device" in out


def test_embed_skips_or_stops_on_corrupt_images(
    runs: tuple[Path, Path], tiny_coco_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(tiny_coco_dir / SPLIT / f"{int(QUERY_ID):012d}.jpg", folder / "good.jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    base = ["ssl", "embed", "--checkpoint", str(runs[0]), "--data", str(folder), "--quiet"]
    assert main([*base, "--out", str(tmp_path / "i1")]) == 1  # partial: skipped and counted
    err = capsys.readouterr().err
    assert "broken.jpg" in err and "1 unreadable images skipped" in err
    from core.search import EmbeddingIndex

    assert EmbeddingIndex.load(tmp_path / "i1").image_ids == ["good.jpg"]
    assert "broken.jpg" in _error(
        [*base, "--out", str(tmp_path / "i2"), "--on-error", "raise"], capsys
    )


def test_eval_flags_an_encoder_trained_on_the_eval_split(
    tiny_coco_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _make_run(tmp_path / "leaky", 0, data_dir=tiny_coco_dir, split=SPLIT)
    assert (
        main(["ssl", "eval", "--checkpoint", str(run), "--data", str(tiny_coco_dir), "-k", "1"])
        == 0
    )
    assert "not held-out" in capsys.readouterr().out


def test_search_table_stays_aligned_with_long_paths(
    runs: tuple[Path, Path], tiny_coco_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from core.cli.tables import PATH_WIDTH

    deep = tmp_path / ("a_rather_long_folder_name_" * 3) / "more"
    deep.mkdir(parents=True)
    sources = sorted((tiny_coco_dir / SPLIT).glob("*.jpg"))[:4]
    names = ["x.jpg", "short.jpg", f"{'very_long_file_name_' * 4}.jpg", "mid_length_name.jpg"]
    for src, name in zip(sources, names, strict=True):
        shutil.copy(src, deep / name)
    index = tmp_path / "long-index"
    base = ["ssl", "embed", "--checkpoint", str(runs[0]), "--data", str(deep), "--out", str(index)]
    assert main([*base, "--quiet"]) == 0
    capsys.readouterr()
    assert main(["ssl", "search", "--index", str(index), "--id", "x.jpg", "-k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.lstrip().startswith("rank"))
    table = lines[header:header + 4]
    start = table[0].index("path")
    for line in table[1:]:
        # Every row's path begins under the header and ends before the same column.
        cell = line[start:].split("  ")[0]
        assert cell and not line[start - 1].strip(), line
        assert len(cell) <= max(PATH_WIDTH, len("path")), line
        assert "..." in cell and cell.endswith(".jpg"), "a long path keeps its file name"


def _collapsed_run(folder: Path) -> Path:
    """An encoder that maps every image to (almost) the same embedding."""
    from core.ssl.checkpoint import save_checkpoint
    from core.ssl.config import SSLConfig
    from core.ssl.models import build_model

    config = SSLConfig(img_size=32, batch_size=8, num_epochs=1, seed=0, out_dir=folder)
    torch.manual_seed(0)
    model = build_model(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias"):
                param.fill_(1.0)
            else:
                param.mul_(1e-4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    save_checkpoint(folder, model, optimizer, config, epoch=1, rng_state=torch.get_rng_state())
    return folder


def test_search_warns_when_the_index_has_collapsed(
    tiny_coco_dir: Path, index_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _collapsed_run(tmp_path / "collapsed")
    index = tmp_path / "collapsed-index"
    assert main(["ssl", "embed", "--checkpoint", str(run), "--data", str(tiny_coco_dir), "--split",
                 SPLIT, "--out", str(index), "--quiet"]) == 0
    assert "collapsed" in capsys.readouterr().err  # said when the index is built
    assert main(["ssl", "search", "--index", str(index), "--id", QUERY_ID, "-k", "3"]) == 0
    out, err = capsys.readouterr()
    assert "WARNING" in err and "collapsed" in err and "ssl embed" in err
    assert len([line for line in out.splitlines() if line.strip()[:1].isdigit()]) == 3
    # A healthy index gets no warning.
    assert main(["ssl", "search", "--index", str(index_dir), "--id", QUERY_ID, "-k", "3"]) == 0
    assert "collapsed" not in capsys.readouterr().err
    # Text search ranks the (COCO) captions, not embeddings: no collapse warning for it.
    assert main(["ssl", "search", "--index", str(index), "--text", "a man riding", "-k", "3"]) == 0
    out, err = capsys.readouterr()
    assert "collapsed" not in err and "WARNING" not in err and "BM25" in out
    assert len([line for line in out.splitlines() if line.strip()[:1].isdigit()]) == 3


def test_eval_warns_when_the_trained_encoder_has_collapsed(
    runs: tuple[Path, Path], tiny_coco_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _collapsed_run(tmp_path / "collapsed")
    argv = ["ssl", "eval", "--data", str(tiny_coco_dir), "--split", SPLIT, "-k", "3", "--quiet"]
    assert main([*argv, "--checkpoint", str(run)]) == 0
    out, err = capsys.readouterr()
    assert "mAP@3" in out and "WARNING" in err and "collapsed" in err
    assert main([*argv, "--checkpoint", str(runs[0])]) == 0
    assert "collapsed" not in capsys.readouterr().err


def test_embed_with_caption_generates_captions_for_text_search(
    runs: tuple[Path, Path], tiny_coco_dir: Path, tiny_model_dir: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import core

    folder = tmp_path / "photos"  # a plain folder: no reference captions of its own
    folder.mkdir()
    images = sorted((tiny_coco_dir / SPLIT).glob("*.jpg"))[:8]
    for p in images:
        shutil.copy(p, folder / p.name)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not an image")
    index_dir = tmp_path / "captioned"
    code = main(["ssl", "embed", "--checkpoint", str(runs[0]), "--data", str(folder), "--out",
                 str(index_dir), "--caption", "--model", str(tiny_model_dir), "--caption-batch-size", "4",
                 "--device", "cpu", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "captions generated for 8 of 8 images" in err  # broken.jpg skipped
    from core.search import EmbeddingIndex

    index = EmbeddingIndex.load(index_dir)
    expected = core.get_captioner(str(tiny_model_dir), device="cpu").caption_batch(
        [folder / p.name for p in images], batch_size=4)
    assert [index.captions[index.row_of_id(p.name)] for p in images] == [[c] for c in expected]
    assert index.generated == index.captions  # all written by the captioner, labelled so
    for caption in expected:  # each caption's words find an image with that caption first
        data = json.loads(_search(["--index", str(index_dir), "--text", caption, "-k", "3",
                                   "--format", "json"], capsys)[0])
        assert data["results"][0]["captions"] == [caption]
    out = _search(["--index", str(index_dir), "--text", expected[0]], capsys)[0]
    assert "(scores: BM25)" in out and expected[0] in out
    lines = out.splitlines()
    rows = lines[next(i for i, line in enumerate(lines) if line.lstrip().startswith("rank")) + 1:]
    assert rows and all(row.endswith(" (generated)") for row in rows)  # labelled apart from references


def test_plot_of_an_index_of_tar_shards_draws_the_members(
    runs: tuple[Path, Path], tiny_coco_dir: Path, tmp_path: Path
) -> None:
    """Tar members have no file: query and result tiles are read from the shards (blank once moved)."""
    from tests.core.distributed.helpers import val_images, write_tar_shards

    images = val_images(tiny_coco_dir)[:8]
    write_tar_shards(images, tmp_path / "shards", per_shard=4)
    out = tmp_path / "index"
    code = main(["ssl", "embed", "--checkpoint", str(runs[0]), "--data", str(tmp_path / "shards" / "*.tar"),
                 "--out", str(out), "--quiet"])
    assert code == EXIT_PARTIAL and out.is_dir()  # the shards' hostile members were skipped, the rest indexed
    search = ["ssl", "search", "--index", str(out), "--id", images[5].stem, "-k", "3", "--plot"]
    assert main([*search, str(tmp_path / "drawn.png")]) == 0
    shutil.move(tmp_path / "shards", tmp_path / "moved")
    assert main([*search, str(tmp_path / "blank.png")]) == 0
    assert (tmp_path / "drawn.png").read_bytes() != (tmp_path / "blank.png").read_bytes()
    assert (tmp_path / "drawn.png").stat().st_size > (tmp_path / "blank.png").stat().st_size  # pictures
