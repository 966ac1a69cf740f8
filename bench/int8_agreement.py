"""How far int8 captions are from float32 ones, on a model whose captions are words.

The speed rows use random weights (their captions are token soup), so agreement is measured on
the tiny trained test model (``tests/fixtures/tiny_model.py``: a small ViT-GPT2 fine-tuned on
Tiny COCO train2017, built once and cached in ``.test-cache/``) over Tiny COCO val2017: the share
of identical captions, and BLEU-4 / CIDEr-D of the int8 captions scored against the float32
caption of the same image as the only reference (1.0 / 10.0 would be identical everywhere).
"""

from __future__ import annotations

from pathlib import Path


def agreement(coco_dir: Path, images: int = 50) -> dict[str, str]:
    """``{"int8 vs fp32, tiny trained model, ...": "identical 92%, BLEU-4 0.95, CIDEr 9.1"}``."""
    import core
    from core.captioning import References, score_captions
    from tests.fixtures.tiny_model import cached_tiny_model

    model = cached_tiny_model(coco_dir / "annotations" / "captions_train2017.json")
    paths = sorted((coco_dir / "val2017").glob("*.jpg"))[:images]
    fp32 = core.Captioner(str(model), device="cpu", dtype="float32")
    int8 = core.Captioner(str(model), device="cpu", dtype="int8")
    out = {}
    for label, settings in (("greedy", {"num_beams": 1}), ("4 beams", {"num_beams": 4})):
        want = fp32.caption_batch(paths, **settings)
        got = int8.caption_batch(paths, **settings)
        same = sum(a == b for a, b in zip(got, want, strict=True)) / len(want)
        refs = References({i: [str(w)] for i, w in enumerate(want)})
        report = score_captions({i: str(g) for i, g in enumerate(got)}, refs, tokenizer="python")
        out[f"int8 vs fp32 captions, tiny trained model, {len(paths)} Tiny COCO val2017 images, {label}"] = (
            f"identical {same:.0%}, BLEU-4 {report.overall['BLEU-4']:.3f}, CIDEr-D {report.overall['CIDEr-D']:.2f}")
    return out
