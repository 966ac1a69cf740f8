"""Caption scoring: tokenization and BLEU / CIDEr-D against hand-checkable cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.captioning.scoring import References, score_captions, tokenize


def test_tokenize_matches_ptb_rules() -> None:
    assert tokenize("A Man, riding a horse.") == "a man riding a horse"
    # the toolkit lower-cases before it filters, so "-LRB-" survives as "-lrb-" (as in COCOEvalCap)
    assert tokenize("(two) dogs!  ") == "-lrb- two -rrb- dogs"


def test_identical_caption_scores_high_and_wrong_scores_low() -> None:
    refs = References({1: ["a man riding a horse", "a person on a horse"], 2: ["a cat on a couch"]})
    perfect = score_captions({1: "A man riding a horse.", 2: "a cat on a couch"}, refs)
    assert perfect.overall["BLEU-1"] == pytest.approx(1.0, abs=1e-6)
    assert perfect.overall["BLEU-4"] == pytest.approx(1.0, abs=1e-6)
    wrong = score_captions({1: "green bananas everywhere", 2: "green bananas everywhere"}, refs)
    assert wrong.overall["BLEU-1"] < 0.01 and wrong.overall["CIDEr-D"] < 0.01
    assert wrong.per_image[1]["CIDEr-D"] < perfect.per_image[1]["CIDEr-D"]
    # BLEU-1 by hand: "a man on a horse" vs refs: clipped unigram matches 5/5, brevity ok.
    partial = score_captions({1: "a man on a horse"}, References({1: refs.captions[1]}))
    assert partial.overall["BLEU-1"] == pytest.approx(1.0, abs=1e-6)


def test_missing_references_and_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no reference"):
        score_captions({9: "x"}, References({1: ["y"]}))
    with pytest.raises(FileNotFoundError):
        References.from_coco_json(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"images": []}))
    with pytest.raises(ValueError, match="not a COCO captions file"):
        References.from_coco_json(bad)


def test_reads_tiny_coco_references(tiny_coco_dir: Path) -> None:
    refs = References.from_coco_json(tiny_coco_dir / "annotations" / "captions_val2017.json")
    assert len(refs.captions) == 50 and all(len(c) >= 5 for c in refs.captions.values())
    name, image_id = next(iter(refs.file_ids.items()))
    assert refs.image_id(f"/anywhere/{name}") == image_id
