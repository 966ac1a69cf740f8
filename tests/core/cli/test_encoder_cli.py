"""`img2text ssl embed|search|eval --encoder` with tiny random pretrained encoders on Tiny COCO val2017."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.cli import EXIT_ERROR, EXIT_OK, main

SPLIT = "val2017"


@pytest.fixture
def clip_index(tiny_hub: Path, tiny_coco_dir: Path, tmp_path: Path) -> Path:
    out = tmp_path / "clip-index"
    assert main(["ssl", "embed", "--encoder", "tiny/clip", "--data", str(tiny_coco_dir), "--split", SPLIT,
                 "--out", str(out), "--kind", "exact", "--quiet", "--device", "cpu"]) == EXIT_OK
    return out


def _json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(argv) == EXIT_OK
    return json.loads(capsys.readouterr().out)


def test_embed_with_a_hub_encoder_then_search_by_meaning_words_and_both(
    clip_index: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from core.search import EmbeddingIndex

    manifest = json.loads((clip_index / "index.json").read_text())
    assert manifest["encoder"]["id"] == "tiny/clip" and manifest["encoder"]["dimension"] == 16
    index = EmbeddingIndex.load(clip_index)
    assert len(index) == 50 and index.has_captions
    base = ["ssl", "search", "--index", str(clip_index), "--text", "a man riding a horse", "-k", "5",
            "--format", "json", "--device", "cpu"]
    for mode in ("semantic", "words", "hybrid"):
        data = _json([*base, "--text-mode", mode], capsys)
        assert data["text_mode"] == mode
        expected = index.find_text("a man riding a horse", 5, mode=mode)
        assert [r["image_id"] for r in data["results"]] == [r.image_id for r in expected]
        assert [r["score"] for r in data["results"]] == pytest.approx([r.score for r in expected], abs=1e-6)
    assert _json(base, capsys)["text_mode"] == "hybrid"  # both exist: the default
    assert main(["ssl", "search", "--index", str(clip_index), "--text", "a dog", "-k", "3",
                 "--device", "cpu"]) == EXIT_OK
    assert "text mode: hybrid" in capsys.readouterr().out


def test_search_by_meaning_warns_on_a_collapsed_index(clip_index: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """semantic and hybrid rank the image vectors, so their health matters (words mode: it does not)."""
    import dataclasses

    import torch

    from core.search import EmbeddingIndex

    index = EmbeddingIndex.load(clip_index)
    point = torch.nn.functional.normalize(torch.ones(1, index.dim), dim=1)
    near = torch.nn.functional.normalize(point + 1e-3 * torch.randn(len(index), index.dim), dim=1)
    collapsed = dataclasses.replace(index, embeddings=near, backend=None).save(tmp_path / "collapsed")
    base = ["ssl", "search", "--index", str(collapsed), "--text", "a man riding", "-k", "3", "--device", "cpu"]
    for mode, warned in (("semantic", True), ("hybrid", True), ("words", False)):
        assert main([*base, "--text-mode", mode]) == EXIT_OK
        assert ("collapsed" in capsys.readouterr().err) is warned, mode


def test_search_with_another_encoder_is_refused(
    clip_index: Path, tiny_coco_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = next((tiny_coco_dir / SPLIT).glob("*.jpg"))
    code = main(["ssl", "search", "--index", str(clip_index), "--image", str(image), "--encoder",
                 "tiny/dinov2", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == EXIT_ERROR
    assert "built with encoder tiny/clip" in err and "tiny/dinov2" in err and "Traceback" not in err


def test_dinov2_index_refuses_semantic_text(tiny_hub: Path, tiny_coco_dir: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "dino"
    assert main(["ssl", "embed", "--encoder", "tiny/dinov2", "--data", str(tiny_coco_dir), "--split", SPLIT,
                 "--out", str(out), "--quiet", "--device", "cpu"]) == EXIT_OK
    capsys.readouterr()
    code = main(["ssl", "search", "--index", str(out), "--text", "dog", "--text-mode", "semantic"])
    assert code == EXIT_ERROR and "CLIP or SigLIP" in capsys.readouterr().err
    data = _json(["ssl", "search", "--index", str(out), "--text", "dog", "--format", "json"], capsys)
    assert data["text_mode"] == "words" and data["results"]


def test_eval_with_an_encoder_scores_it_next_to_raw_pixels(
    tiny_hub: Path, tiny_coco_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _json(["ssl", "eval", "--encoder", "tiny/siglip2", "--data", str(tiny_coco_dir), "--split", SPLIT,
                  "--format", "json", "--quiet", "--device", "cpu"], capsys)
    methods = [r["method"] for r in data["rows"]]
    assert methods == ["pretrained (siglip2)", "raw pixels 32x32"]
    assert data["n_images"] == 50 and all(0 <= r["p_at_1"] <= 1 for r in data["rows"])
    assert data["rows"][0]["chance"] == data["rows"][1]["chance"] > 0


def test_models_lists_suggested_encoders_of_every_family(capsys: pytest.CaptureFixture[str]) -> None:
    from core.ssl.backbones import FAMILIES

    rows = _json(["models", "--json"], capsys)["encoders"]
    assert {r["family"] for r in rows} == set(FAMILIES)
    clip = next(r for r in rows if r["id"] == "openai/clip-vit-base-patch32")
    assert clip["dimension"] == 512 and clip["licence"] == "MIT" and clip["text"] is True
    assert all(r["text"] == FAMILIES[r["family"]].dual for r in rows)
    assert main(["models"]) == EXIT_OK and "facebook/dinov2-small" in capsys.readouterr().out
