"""Score captions against COCO reference captions: BLEU-1..4 and CIDEr-D.

The n-gram scorers are pycocoevalcap's (the maintained COCO implementation; its ``Cider`` is
CIDEr-D). Its PTB tokenizer needs Java, so tokenization here is a pure-Python equivalent:
lower case, PTB punctuation removed, split on whitespace.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "CIDEr-D")
# The punctuation pycocoevalcap's PTBTokenizer removes.
_PUNCT = re.compile(r"''|'|``|`|-LRB-|-RRB-|-LCB-|-RCB-|[.?!,:\-;()\[\]{}\"_/@#$%&*+=<>|\\^~]")


def tokenize(text: str) -> str:
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


@dataclass
class References:
    """COCO captions: ``captions[image_id] = [five strings]`` and ``file_ids[file_name] = id``."""

    captions: dict[int, list[str]]
    file_ids: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_coco_json(cls, path: str | Path) -> References:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: reference captions file not found")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            caps: dict[int, list[str]] = {}
            for ann in data["annotations"]:
                caps.setdefault(int(ann["image_id"]), []).append(ann["caption"])
            files = {img["file_name"]: int(img["id"]) for img in data.get("images", [])}
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not a COCO captions file ({exc})") from exc
        return cls(caps, files)

    def image_id(self, path: str) -> int:
        """Find the image id of a captioned path by file name, then by a numeric stem."""
        name = Path(path).name
        if name in self.file_ids:
            return self.file_ids[name]
        stem = Path(path).stem
        if stem.isdigit() and int(stem) in self.captions:
            return int(stem)
        raise KeyError(f"{path}: no reference captions for this image")


@dataclass
class ScoreReport:
    overall: dict[str, float]
    per_image: dict[int, dict[str, float]]
    count: int


def score_captions(predictions: dict[int, str], references: References) -> ScoreReport:
    """Corpus-level and per-image BLEU-1..4 and CIDEr-D for ``predictions[image_id] = caption``."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    missing = sorted(set(predictions) - set(references.captions))
    if missing:
        raise ValueError(f"no reference captions for image id(s) {missing[:5]}")
    if not predictions:
        raise ValueError("no captions to score")
    ids = sorted(predictions)
    gts = {i: [tokenize(c) for c in references.captions[i]] for i in ids}
    res = {i: [tokenize(predictions[i]) or "<empty>"] for i in ids}
    bleu, bleu_each = Bleu(4).compute_score(gts, res, verbose=0)
    cider, cider_each = Cider().compute_score(gts, res)
    overall = {f"BLEU-{n + 1}": float(bleu[n]) for n in range(4)}
    overall["CIDEr-D"] = float(cider)
    per_image = {
        i: {**{f"BLEU-{n + 1}": float(bleu_each[n][k]) for n in range(4)}, "CIDEr-D": float(cider_each[k])}
        for k, i in enumerate(ids)
    }
    return ScoreReport(overall, per_image, len(ids))
