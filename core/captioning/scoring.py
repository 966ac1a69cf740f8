"""Score captions against COCO reference captions: BLEU-1..4 and CIDEr-D, as ``COCOEvalCap`` does.

The scorers are pycocoevalcap's (the official COCO caption toolkit; its ``Cider`` is CIDEr-D),
fed exactly what ``COCOEvalCap.evaluate`` feeds them: the same tokenization, the same image
order. Tokenization is the toolkit's own Java ``PTBTokenizer`` when ``java`` is on the PATH,
else :mod:`core.captioning.ptb_tokenize`, a pure-Python port that gives the same tokens on
COCO-style captions; :attr:`ScoreReport.tokenizer` says which ran.
tests/core/captioning/test_scoring_toolkit.py checks the scores against ``COCOEvalCap``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from core.captioning.ptb_tokenize import ptb_tokenize, ptb_tokenize_all

METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "CIDEr-D")
TOKENIZERS = ("auto", "java", "python")  # auto: java when it is installed, else python


def tokenize(text: str) -> str:
    """One caption through the pure-Python PTB tokenization (lower case, punctuation out)."""
    return ptb_tokenize(text)


def java_tokenizer_available() -> bool:
    """Whether pycocoevalcap's Java PTBTokenizer can run here (``java`` and its jar)."""
    try:
        from pycocoevalcap.tokenizer import ptbtokenizer
    except ImportError:
        return False
    jar = Path(ptbtokenizer.__file__).with_name(ptbtokenizer.STANFORD_CORENLP_3_4_1_JAR)
    return shutil.which("java") is not None and jar.is_file()


def tokenize_groups(groups: dict[int, list[str]], tokenizer: str = "auto") -> tuple[dict[int, list[str]], str]:
    """Tokenize ``groups[image_id] = [captions]`` as ``PTBTokenizer.tokenize`` does, in one pass.

    Args:
        groups: captions per image, in the order the toolkit would see them.
        tokenizer: "java" (pycocoevalcap's PTBTokenizer), "python" (the port) or "auto".

    Returns:
        ``(tokenized groups, name of the tokenizer that ran: "java" or "python")``.

    Raises:
        ValueError: for an unknown tokenizer, or "java" when Java is not installed.
    """
    if tokenizer not in TOKENIZERS:
        raise ValueError(f"tokenizer {tokenizer!r}: expected one of {', '.join(TOKENIZERS)}")
    if tokenizer == "auto":
        tokenizer = "java" if java_tokenizer_available() else "python"
    if tokenizer == "java":
        if not java_tokenizer_available():
            raise ValueError("tokenizer 'java' needs java on the PATH (apt-get install default-jre-headless)")
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        wrapped = {k: [{"caption": c} for c in caps] for k, caps in groups.items()}
        return PTBTokenizer().tokenize(wrapped), "java"
    flat = ptb_tokenize_all([c for caps in groups.values() for c in caps])
    out: dict[int, list[str]] = {}
    at = 0
    for k, caps in groups.items():
        out[k], at = flat[at:at + len(caps)], at + len(caps)
    return out, "python"


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

    def ordered(self, ids: list[int]) -> list[int]:
        """``ids`` in the order of the file's images (COCO's ``getImgIds``), unknown ones last."""
        rank = {image_id: n for n, image_id in enumerate(dict.fromkeys(self.file_ids.values()))}
        return sorted(ids, key=lambda i: (rank.get(i, len(rank)), i))

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
    overall: dict[str, float]  # metric name -> corpus score
    per_image: dict[int, dict[str, float]]  # image id -> metric name -> score
    count: int  # images scored
    tokenizer: str = "python"  # which PTB tokenization ran: "java" (the toolkit's) or "python"


def score_captions(predictions: dict[int, str], references: References, *,
                   tokenizer: str = "auto") -> ScoreReport:
    """Corpus-level and per-image BLEU-1..4 and CIDEr-D for ``predictions[image_id] = caption``.

    Equal to ``COCOEvalCap`` with ``params["image_id"]`` = the predicted images: images in the
    order of the references file, references and predictions tokenized in one pass each.

    Args:
        predictions: one caption per image id.
        references: the COCO reference captions.
        tokenizer: "auto" (Java when installed), "java" or "python"; see :func:`tokenize_groups`.

    Returns:
        The scores, and the name of the tokenizer that ran.

    Raises:
        ValueError: no predictions, predictions without references, or a bad tokenizer.
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    missing = sorted(set(predictions) - set(references.captions))
    if missing:
        raise ValueError(f"no reference captions for image id(s) {missing[:5]}")
    if not predictions:
        raise ValueError("no captions to score")
    ids = references.ordered([i for i in predictions])
    gts, ran = tokenize_groups({i: references.captions[i] for i in ids}, tokenizer)
    res, _ = tokenize_groups({i: [predictions[i]] for i in ids}, ran)
    bleu, bleu_each = Bleu(4).compute_score(gts, res, verbose=0)
    cider, cider_each = Cider().compute_score(gts, res)
    overall = {f"BLEU-{n + 1}": float(bleu[n]) for n in range(4)}
    overall["CIDEr-D"] = float(cider)
    per_image = {
        i: {**{f"BLEU-{n + 1}": float(bleu_each[n][k]) for n in range(4)}, "CIDEr-D": float(cider_each[k])}
        for k, i in enumerate(ids)
    }
    return ScoreReport(overall, per_image, len(ids), ran)
