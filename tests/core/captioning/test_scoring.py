"""Caption scoring: tokenization, BLEU / ROUGE-L / CIDEr-D on hand-checkable cases, and the
Java tokenizer's fallback when Java cannot run."""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
from pathlib import Path

import pytest

from core.captioning.scoring import METRICS, References, score_captions, tokenize, tokenize_groups
from core.errors import ConfigError, DatasetError, DatasetNotFoundError, Img2TextError
from tests.core.captioning.test_ptb_tokenize import require_java


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
    with pytest.raises(DatasetError, match="no reference"):
        score_captions({9: "x"}, References({1: ["y"]}))
    with pytest.raises(DatasetError, match="no captions to score"):
        score_captions({}, References({1: ["y"]}))
    with pytest.raises(ConfigError, match="'perl': expected one of auto, java, python"):
        score_captions({1: "y"}, References({1: ["y"]}), tokenizer="perl")
    with pytest.raises(DatasetNotFoundError, match="none.json: reference captions file not found"):
        References.from_coco_json(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    for content in (json.dumps({"images": []}), "[1, 2]", '{"annotations": [{"image_id": "x", "caption": "a"}]}',
                    '{"annotations": [{"image_id": 1, "caption": 5}]}', "{not json", b"\xff\xfe"):
        bad.write_bytes(content if isinstance(content, bytes) else content.encode())
        with pytest.raises(DatasetError, match="bad.json: not a COCO captions file"):
            References.from_coco_json(bad)
    # the project's errors, still caught by callers that catch the built-in ones
    assert issubclass(DatasetNotFoundError, FileNotFoundError) and issubclass(DatasetError, ValueError)
    assert issubclass(ConfigError, Img2TextError)


def test_reads_tiny_coco_references(tiny_coco_dir: Path) -> None:
    refs = References.from_coco_json(tiny_coco_dir / "annotations" / "captions_val2017.json")
    assert len(refs.captions) == 50 and all(len(c) >= 5 for c in refs.captions.values())
    name, image_id = next(iter(refs.file_ids.items()))
    assert refs.image_id(f"/anywhere/{name}") == image_id


# -- the Java tokenizer: which one ran, and the fallback when Java cannot run ------------------

REFS = References({1: ["A man (riding) a horse.", "a person on a horse"], 2: ["a cat on a couch"]})
PREDS = {1: "a man's horse", 2: "the cat's couch, twin-hulled"}


def fake_java(folder: Path, script: str) -> Path:
    """A ``java`` executable that fails the way a broken installation does."""
    folder.mkdir()
    exe = folder / "java"
    exe.write_text("#!/bin/sh\n" + script + "\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return folder


@pytest.mark.parametrize("script, reason", [
    ("echo 'Error: Could not find or load main class' >&2; exit 1",
     "java exited with status 1: Error: Could not find or load main class"),
    ("exit 0", "java printed nothing for 3 caption(s)"),  # claims success
    ("printf 'a man'", "java returned 1 line(s) for 3 caption(s)"),
])
def test_auto_falls_back_to_python_when_java_fails_and_says_why(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str, reason: str) -> None:
    python = score_captions(PREDS, REFS, tokenizer="python")
    monkeypatch.setenv("PATH", f"{fake_java(tmp_path / 'bin', script)}{os.pathsep}{os.environ['PATH']}")
    report = score_captions(PREDS, REFS, tokenizer="auto")
    assert report.tokenizer == "python"
    assert reason in report.tokenizer_note and "used the pure-Python port" in report.tokenizer_note
    assert report.overall == python.overall and report.per_image == python.per_image
    with pytest.raises(ConfigError, match="tokenizer 'java' cannot run here .*--tokenizer python"):
        score_captions(PREDS, REFS, tokenizer="java")
    with pytest.raises(ConfigError, match=re.escape(reason.split(" for ")[0])):
        tokenize_groups({1: ["a dog", "a cat"]}, "java")


def test_auto_falls_back_when_java_is_not_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    report = score_captions(PREDS, REFS)
    assert (report.tokenizer, report.tokenizer_note) == (
        "python", "the Java PTBTokenizer did not run (java is not on the PATH); used the pure-Python port")


def test_auto_falls_back_when_its_temporary_file_cannot_be_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Java's input file has nowhere to go (the temp folder is a file): the port runs instead."""
    require_java()
    (not_a_folder := tmp_path / "file").write_text("x")
    monkeypatch.setattr(tempfile, "tempdir", str(not_a_folder))
    report = score_captions(PREDS, REFS)
    assert report.tokenizer == "python" and "Error" in report.tokenizer_note
    assert str(not_a_folder) in report.tokenizer_note


def test_java_writes_its_input_in_the_temp_folder_not_next_to_the_toolkit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pycocoevalcap's own wrapper writes next to its module (read-only in many installs); the
    runner here writes in a fresh temporary folder, removes it, and scores as the port does."""
    require_java()
    from pycocoevalcap.tokenizer import ptbtokenizer

    toolkit = Path(ptbtokenizer.__file__).parent
    before = sorted(p.name for p in toolkit.iterdir())
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    java = score_captions(PREDS, REFS, tokenizer="auto")
    assert (java.tokenizer, java.tokenizer_note) == ("java", "")
    assert java.overall == score_captions(PREDS, REFS, tokenizer="python").overall
    assert list(temp.iterdir()) == [] and sorted(p.name for p in toolkit.iterdir()) == before
    assert set(java.overall) == set(METRICS) and 0 < java.overall["ROUGE-L"] < 1
