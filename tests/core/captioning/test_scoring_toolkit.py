"""``img2text eval`` gives COCOEvalCap's scores to the last digit (BLEU-1..4, ROUGE-L, CIDEr-D)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.captioning.scoring import References, score_captions
from tests.core.captioning.ptb_cases import HARD_CASES
from tests.core.captioning.test_ptb_tokenize import require_java

REPO = Path(__file__).resolve().parents[3]
TOOLKIT = {"BLEU-1": "Bleu_1", "BLEU-2": "Bleu_2", "BLEU-3": "Bleu_3", "BLEU-4": "Bleu_4",
           "ROUGE-L": "ROUGE_L", "CIDEr-D": "CIDEr"}


class _Skipped:
    """Stands in for METEOR and SPICE, which need a CoreNLP download this test cannot make."""

    def method(self) -> str:
        return "skipped"

    def compute_score(self, gts: dict, res: dict) -> tuple[float, list[float]]:
        return 0.0, [0.0] * len(gts)


def coco_eval_cap(annotations: Path, results: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """COCOEvalCap as its README runs it: params image_id = the results' images."""
    from pycocoevalcap import eval as coco_eval
    from pycocotools.coco import COCO

    monkeypatch.setattr(coco_eval, "Meteor", _Skipped)
    monkeypatch.setattr(coco_eval, "Spice", _Skipped)
    coco = COCO(str(annotations))
    result = coco.loadRes(str(results))
    evaluator = coco_eval.COCOEvalCap(coco, result)
    evaluator.params["image_id"] = result.getImgIds()
    evaluator.evaluate()
    return {ours: evaluator.eval[theirs] for ours, theirs in TOOLKIT.items()}


def captions_file(tiny_coco_dir: Path, out: Path) -> Path:
    """Tiny COCO val captions as COCO ships them: without the "categories" list that Tiny COCO
    adds (pycocotools' loadRes indexes categories of caption results and fails on it)."""
    data = json.loads((tiny_coco_dir / "annotations" / "captions_val2017.json").read_text(encoding="utf-8"))
    data.pop("categories", None)
    out.write_text(json.dumps(data), encoding="utf-8")
    return out


def fake_results(annotations: Path, out: Path) -> Path:
    """Each image captioned with a neighbour's reference, hard cases mixed in, one empty."""
    data = json.loads(annotations.read_text(encoding="utf-8"))
    ids = [img["id"] for img in data["images"]]
    first: dict[int, str] = {}
    for ann in data["annotations"]:
        first.setdefault(ann["image_id"], ann["caption"])
    rows = []
    for n, image_id in enumerate(ids):
        caption = first[ids[(n + 1) % len(ids)]]
        if n % 5 == 0:
            caption = HARD_CASES[n % len(HARD_CASES)]
        rows.append({"image_id": image_id, "caption": "" if n == 7 else caption})
    rows.reverse()  # results in another order than the references
    out.write_text(json.dumps(rows), encoding="utf-8")
    return out


def cli_eval(results: Path, annotations: Path, tokenizer: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "core.cli", "eval", "--captions", str(results),
                           "--references", str(annotations), "--output-format", "json",
                           "--tokenizer", tokenizer], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def test_img2text_eval_equals_coco_eval_cap(tiny_coco_dir: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    require_java()
    annotations = captions_file(tiny_coco_dir, tmp_path / "captions_val2017.json")
    results = fake_results(annotations, tmp_path / "results.json")
    toolkit = coco_eval_cap(annotations, results, monkeypatch)
    for tokenizer in ("java", "python"):
        ours = cli_eval(results, annotations, tokenizer)
        assert ours["tokenizer"] == tokenizer and ours["images"] == 50
        for name, value in toolkit.items():
            assert ours[name] == value, f"{tokenizer}: {name} {ours[name]!r} != COCOEvalCap {value!r}"
    assert 0 < toolkit["BLEU-1"] < 1 and 0 < toolkit["ROUGE-L"] < 1 and toolkit["CIDEr-D"] > 0


def test_tiny_model_captions_score_as_coco_eval_cap(tiny_coco_dir: Path, tiny_model_dir: Path,
                                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_java()
    annotations = captions_file(tiny_coco_dir, tmp_path / "captions_val2017.json")
    results = tmp_path / "tiny.json"
    proc = subprocess.run([sys.executable, "-m", "core.cli", "caption", str(tiny_coco_dir / "val2017"),
                           "--model", str(tiny_model_dir), "--device", "cpu", "--format", "coco",
                           "-o", str(results), "--quiet"], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    toolkit = coco_eval_cap(annotations, results, monkeypatch)
    refs = References.from_coco_json(annotations)
    rows = json.loads(results.read_text(encoding="utf-8"))
    for tokenizer in ("java", "python"):
        report = score_captions({r["image_id"]: r["caption"] for r in rows}, refs, tokenizer=tokenizer)
        assert report.tokenizer == tokenizer
        assert {name: report.overall[name] for name in toolkit} == toolkit
