"""Score captions against COCO reference captions: BLEU-1..4, ROUGE-L and CIDEr-D, as ``COCOEvalCap``.

The scorers are pycocoevalcap's (the official COCO caption toolkit; its ``Cider`` is CIDEr-D),
fed exactly what ``COCOEvalCap.evaluate`` feeds them: the same tokenization, the same image
order. Tokenization is the toolkit's own Java ``PTBTokenizer`` (its jar, its command line, its
punctuation list) when ``java`` runs here, else :mod:`core.captioning.ptb_tokenize`, a
pure-Python port that gives the same tokens on COCO-style captions; :attr:`ScoreReport.tokenizer`
says which ran and :attr:`ScoreReport.tokenizer_note` why "auto" fell back to the port.
tests/core/captioning/test_scoring_toolkit.py checks the scores against ``COCOEvalCap``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from core.captioning.ptb_tokenize import ptb_tokenize, ptb_tokenize_all
from core.errors import ConfigError, DatasetError, DatasetNotFoundError

METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "CIDEr-D")
TOKENIZERS = ("auto", "java", "python")  # auto: java when it runs, else python
_JAVA_FIX = "install Java (apt-get install default-jre-headless) or use --tokenizer python"


class JavaTokenizerFailed(Exception):
    """The Java PTBTokenizer could not run or gave too few lines (internal: "auto" falls back)."""


def tokenize(text: str) -> str:
    """One caption through the pure-Python PTB tokenization (lower case, punctuation out)."""
    return ptb_tokenize(text)


def _toolkit_jar() -> Path | None:
    try:
        from pycocoevalcap.tokenizer import ptbtokenizer
    except ImportError:
        return None
    jar = Path(ptbtokenizer.__file__).with_name(ptbtokenizer.STANFORD_CORENLP_3_4_1_JAR)
    return jar if jar.is_file() else None


def java_tokenizer_available() -> bool:
    """Whether pycocoevalcap's Java PTBTokenizer is installed here (``java`` and its jar)."""
    return shutil.which("java") is not None and _toolkit_jar() is not None


def java_tokenize(groups: dict[int, list[str]]) -> dict[int, list[str]]:
    """``PTBTokenizer().tokenize`` of pycocoevalcap, with its failures seen.

    The same jar, command line (``-preserveLines -lowerCase``), input bytes and punctuation
    filter as the toolkit, but the input file goes to a fresh temporary folder (the toolkit writes
    it next to its own module, which may be read-only) and a Java that fails is an error (the
    toolkit ignores Java's exit status and returns empty captions).

    Raises:
        JavaTokenizerFailed: Java or the jar is missing, Java cannot start or exits non-zero,
            the temporary file cannot be written, or Java printed nothing or fewer lines than
            there are captions.
    """
    from pycocoevalcap.tokenizer.ptbtokenizer import PUNCTUATIONS

    java, jar = shutil.which("java"), _toolkit_jar()
    if java is None or jar is None:
        raise JavaTokenizerFailed("java is not on the PATH" if java is None else "pycocoevalcap's jar is missing")
    ids = [k for k, caps in groups.items() for _ in caps]
    sentences = "\n".join(c.replace("\n", " ") for caps in groups.values() for c in caps)
    try:
        with tempfile.TemporaryDirectory(prefix="img2text-ptb-") as tmp:
            source = Path(tmp) / "captions.txt"
            source.write_bytes(sentences.encode())
            proc = subprocess.run([java, "-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer",
                                   "-preserveLines", "-lowerCase", str(source)],
                                  stdin=subprocess.DEVNULL, capture_output=True, check=False)
        lines = proc.stdout.decode().split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise JavaTokenizerFailed(f"{type(exc).__name__}: {exc}") from exc
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        raise JavaTokenizerFailed(f"java exited with status {proc.returncode}: {tail[0][:300]}")
    if not proc.stdout.strip() and sentences.strip():
        raise JavaTokenizerFailed(f"java printed nothing for {len(ids)} caption(s)")
    if len(lines) < len(ids):
        raise JavaTokenizerFailed(f"java returned {len(lines)} line(s) for {len(ids)} caption(s)")
    out: dict[int, list[str]] = {}
    for k, line in zip(ids, lines, strict=False):  # more lines than ids: as in the toolkit
        out.setdefault(k, []).append(" ".join(w for w in line.rstrip().split(" ") if w not in PUNCTUATIONS))
    return out


def _python_tokenize(groups: dict[int, list[str]]) -> dict[int, list[str]]:
    flat = ptb_tokenize_all([c for caps in groups.values() for c in caps])
    out: dict[int, list[str]] = {}
    at = 0
    for k, caps in groups.items():
        out[k], at = flat[at:at + len(caps)], at + len(caps)
    return out


def _check_tokenizer(tokenizer: str) -> None:
    if tokenizer not in TOKENIZERS:
        raise ConfigError(f"tokenizer {tokenizer!r}: expected one of {', '.join(TOKENIZERS)}")


def tokenize_all(passes: list[dict[int, list[str]]], tokenizer: str = "auto"
                 ) -> tuple[list[dict[int, list[str]]], str, str]:
    """Tokenize each ``groups[image_id] = [captions]`` in ``passes`` as ``PTBTokenizer.tokenize``
    does (one pass per dict, as ``COCOEvalCap`` tokenizes references and results apart).

    Args:
        passes: captions per image, in the order the toolkit would see them, once per pass.
        tokenizer: "java" (pycocoevalcap's PTBTokenizer), "python" (the port) or "auto" (Java
            when it runs; if it is missing or fails, every pass goes through the port).

    Returns:
        ``(tokenized passes, the tokenizer that ran: "java" or "python", why "auto" fell back
        to "python", or "")``.

    Raises:
        ConfigError: an unknown tokenizer, or "java" when Java is missing or fails here.
    """
    _check_tokenizer(tokenizer)
    if tokenizer != "python":
        try:
            return [java_tokenize(groups) for groups in passes], "java", ""
        except JavaTokenizerFailed as exc:
            if tokenizer == "java":
                raise ConfigError(f"tokenizer 'java' cannot run here ({exc}); {_JAVA_FIX}") from exc
            note = f"the Java PTBTokenizer did not run ({exc}); used the pure-Python port"
            return [_python_tokenize(groups) for groups in passes], "python", note
    return [_python_tokenize(groups) for groups in passes], "python", ""


def tokenize_groups(groups: dict[int, list[str]], tokenizer: str = "auto") -> tuple[dict[int, list[str]], str]:
    """Tokenize ``groups[image_id] = [captions]`` as ``PTBTokenizer.tokenize`` does, in one pass.

    Returns:
        ``(tokenized groups, name of the tokenizer that ran: "java" or "python")``.

    Raises:
        ConfigError: for an unknown tokenizer, or "java" when Java is missing or fails.
    """
    (out,), ran, _note = tokenize_all([groups], tokenizer)
    return out, ran


@dataclass
class References:
    """COCO captions: ``captions[image_id] = [five strings]`` and ``file_ids[file_name] = id``."""

    captions: dict[int, list[str]]
    file_ids: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_coco_json(cls, path: str | Path) -> References:
        """Read a COCO captions file (``annotations`` with ``image_id`` and ``caption``).

        Raises:
            DatasetNotFoundError: no such file (also a ``FileNotFoundError``).
            DatasetError: not UTF-8 JSON, or not a COCO captions file (the message names it).
        """
        path = Path(path)
        if not path.is_file():
            raise DatasetNotFoundError(f"{path}: reference captions file not found; pass a COCO "
                                       "captions JSON such as annotations/captions_val2017.json")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            caps: dict[int, list[str]] = {}
            for ann in data["annotations"]:
                if not isinstance(ann["caption"], str):
                    raise TypeError(f"caption of image {ann['image_id']!r} is not a string")
                caps.setdefault(int(ann["image_id"]), []).append(ann["caption"])
            files = {img["file_name"]: int(img["id"]) for img in data.get("images", [])}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:  # JSON/UTF-8 errors are ValueErrors
            raise DatasetError(f"{path}: not a COCO captions file ({type(exc).__name__}: {exc}); "
                               "expected {\"annotations\": [{\"image_id\", \"caption\"}, ...]}") from exc
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
    tokenizer_note: str = ""  # why "auto" fell back to the Python port ("" when it did not)


def score_captions(predictions: dict[int, str], references: References, *,
                   tokenizer: str = "auto") -> ScoreReport:
    """Corpus-level and per-image BLEU-1..4, ROUGE-L and CIDEr-D for ``predictions[image_id] = caption``.

    Equal to ``COCOEvalCap`` with ``params["image_id"]`` = the predicted images: images in the
    order of the references file, references and predictions tokenized in one pass each.

    Args:
        predictions: one caption per image id.
        references: the COCO reference captions.
        tokenizer: "auto" (Java when it runs), "java" or "python"; see :func:`tokenize_all`.

    Returns:
        The scores, the tokenizer that ran, and why "auto" fell back to the port (if it did).

    Raises:
        DatasetError: no predictions, or predictions without references.
        ConfigError: an unknown tokenizer, or "java" when Java is missing or fails.
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    _check_tokenizer(tokenizer)
    missing = sorted(set(predictions) - set(references.captions))
    if missing:
        raise DatasetError(f"no reference captions for image id(s) {missing[:5]}; score against the "
                           "references of the split these images come from")
    if not predictions:
        raise DatasetError("no captions to score: none of the captions matches an image of the references")
    ids = references.ordered([i for i in predictions])
    (gts, res), ran, note = tokenize_all([{i: references.captions[i] for i in ids},
                                          {i: [predictions[i]] for i in ids}], tokenizer)
    bleu, bleu_each = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, rouge_each = Rouge().compute_score(gts, res)
    cider, cider_each = Cider().compute_score(gts, res)
    overall = {f"BLEU-{n + 1}": float(bleu[n]) for n in range(4)}
    overall["ROUGE-L"] = float(rouge)
    overall["CIDEr-D"] = float(cider)
    per_image = {
        i: {**{f"BLEU-{n + 1}": float(bleu_each[n][k]) for n in range(4)},
            "ROUGE-L": float(rouge_each[k]), "CIDEr-D": float(cider_each[k])}
        for k, i in enumerate(ids)
    }
    return ScoreReport(overall, per_image, len(ids), ran, note)
