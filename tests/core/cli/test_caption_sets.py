"""`img2text eval --captions` and `ssl embed --captions` read sidecar folders and imagefolders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from core.cli import main

SPLIT = "val2017"
CAPTIONS = ["a man riding a wave on a surfboard", "two dogs lying on a couch", "a red bus on a street",
            "a plate of food with broccoli", "a cat sitting on a laptop"]


@pytest.fixture()
def picked(tiny_coco_dir: Path) -> list[Path]:
    return sorted((tiny_coco_dir / SPLIT).glob("*.jpg"))[:5]


def _scores(capsys, captions: Path, tiny_coco_dir: Path) -> dict:
    code = main(["eval", "--captions", str(captions), "--references",
                 str(tiny_coco_dir / "annotations" / f"captions_{SPLIT}.json"), "--tokenizer", "python",
                 "--output-format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def test_eval_scores_sidecars_and_an_imagefolder_as_the_same_jsonl(capsys, tiny_coco_dir: Path,
                                                                   picked: list[Path], tmp_path: Path) -> None:
    jsonl = tmp_path / "caps.jsonl"
    jsonl.write_text("".join(json.dumps({"path": str(p), "caption": c}) + "\n"
                             for p, c in zip(picked, CAPTIONS, strict=True)))
    reference = _scores(capsys, jsonl, tiny_coco_dir)
    assert reference["images"] == 5

    beside = tmp_path / "beside"  # images with their caption files
    mirrored = tmp_path / "mirrored" / "sub"  # caption files only (img2text caption --sidecar -o)
    imagefolder = tmp_path / "hf"
    for folder in (beside, mirrored, imagefolder):
        folder.mkdir(parents=True)
    rows = []
    for p, c in zip(picked, CAPTIONS, strict=True):
        shutil.copyfile(p, beside / p.name)
        (beside / p.with_suffix(".txt").name).write_text(c + "\n", encoding="utf-8")
        (mirrored / p.with_suffix(".caption").name).write_text(c, encoding="utf-8")
        rows.append(json.dumps({"file_name": f"img/{p.name}", "text": c}) + "\n")
    (imagefolder / "metadata.jsonl").write_text("".join(rows))
    for captions in (beside, tmp_path / "mirrored", imagefolder, imagefolder / "metadata.jsonl"):
        assert _scores(capsys, captions, tiny_coco_dir) == reference, captions


def test_ssl_embed_joins_sidecar_captions_to_the_gallery(capsys, picked: list[Path], tmp_path: Path) -> None:
    import torch

    from core.search import EmbeddingIndex
    from core.ssl.checkpoint import save_checkpoint
    from core.ssl.config import SSLConfig
    from core.ssl.models import build_model

    run = tmp_path / "run"
    config = SSLConfig(img_size=32, batch_size=8, num_epochs=1, seed=0, out_dir=run)
    model = build_model(config)
    save_checkpoint(run, model, torch.optim.SGD(model.parameters(), lr=0.1), config, 1, torch.get_rng_state())
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    sidecars = tmp_path / "captions"
    sidecars.mkdir()
    for p, c in zip(picked, CAPTIONS, strict=True):
        shutil.copyfile(p, gallery / p.name)
        (sidecars / p.with_suffix(".txt").name).write_text(c + "\n", encoding="utf-8")
    out = tmp_path / "index"
    code = main(["ssl", "embed", "--data", str(gallery), "--checkpoint", str(run), "--out", str(out),
                 "--kind", "exact", "--device", "cpu", "--quiet", "--captions", str(sidecars)])
    err = capsys.readouterr().err
    assert code == 0, err
    index = EmbeddingIndex.load(out)
    assert [index.captions[index.row_of_id(p.name)] for p in picked] == [[c] for c in CAPTIONS]
