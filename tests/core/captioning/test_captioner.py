"""`Captioner` and `core.caption*` on a tiny real model loaded by path, as users load theirs."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch
from PIL import Image

import core
from core.captioning.api import clear_cache
from core.captioning.generation import GenerationOptions

GREEDY = {"num_beams": 1}


@pytest.fixture(scope="module")
def captioner(tiny_model_dir: Path) -> core.Captioner:
    return core.Captioner(str(tiny_model_dir), device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def coco_images(tiny_coco_dir: Path) -> list[Path]:
    return sorted((tiny_coco_dir / "val2017").glob("*.jpg"))[:12]


def test_captions_are_words(captioner: core.Captioner, coco_images: list[Path]) -> None:
    caps = captioner.caption_batch(coco_images[:4], **GREEDY)
    assert all(isinstance(c, str) and c == c.strip() and "  " not in c for c in caps)
    # The fine-tuned toy model speaks COCO: most captions start like COCO captions do.
    assert sum(c.split()[0] in {"a", "an", "the", "two", "three"} for c in caps if c) >= 2


def test_batch_equals_one_at_a_time(captioner: core.Captioner, coco_images: list[Path]) -> None:
    single = [captioner.caption(p, **GREEDY) for p in coco_images]
    for batch_size in (1, 5, 16):
        assert captioner.caption_batch(coco_images, batch_size=batch_size, **GREEDY) == single


def test_equals_plain_hugging_face_generate(tiny_model_dir: Path, captioner: core.Captioner,
                                            coco_images: list[Path]) -> None:
    from transformers import AutoTokenizer, VisionEncoderDecoderModel, ViTImageProcessor

    model = VisionEncoderDecoderModel.from_pretrained(tiny_model_dir).eval()
    processor = ViTImageProcessor.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    images = [Image.open(p).convert("RGB") for p in coco_images]
    pixels = processor(images=images, return_tensors="pt").pixel_values
    for settings in ({"num_beams": 1, "max_length": 16}, {"num_beams": 4, "max_length": 16},
                     {"num_beams": 1, "max_new_tokens": 8}):
        with torch.no_grad():
            ref_ids = model.generate(pixel_values=pixels, **settings)
        ours = captioner.generate_ids(captioner.preprocess(images), GenerationOptions.from_kwargs(**settings))
        assert torch.equal(ours, ref_ids), settings
        ref_text = [t.strip() for t in tokenizer.batch_decode(ref_ids, skip_special_tokens=True)]
        assert captioner.caption_batch(coco_images, **settings) == ref_text


def test_default_is_model_card_beam_search(captioner: core.Captioner, coco_images: list[Path]) -> None:
    opts = GenerationOptions()
    assert (opts.num_beams, opts.max_length) == (4, 16)
    ids = captioner.generate_ids(captioner.preprocess([Image.open(coco_images[0])]), opts)
    assert ids.shape[1] <= 16
    assert captioner.caption(coco_images[0]) == captioner.caption(coco_images[0], num_beams=4, max_length=16)


def test_max_new_tokens_bounds_length(captioner: core.Captioner, coco_images: list[Path]) -> None:
    opts = GenerationOptions.from_kwargs(num_beams=1, max_new_tokens=3)
    ids = captioner.generate_ids(captioner.preprocess([Image.open(coco_images[0])]), opts)
    assert ids.shape[1] <= 1 + 3


def test_seeded_sampling_is_reproducible(captioner: core.Captioner, coco_images: list[Path]) -> None:
    kw = {"do_sample": True, "num_beams": 1, "temperature": 1.5, "seed": 7}
    first = captioner.caption_batch(coco_images[:6], **kw)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    assert captioner.caption_batch(coco_images[:6], **kw) == first
    assert torch.equal(torch.rand(1), before)  # the caller's RNG stream is untouched


def test_repetition_controls_are_applied(captioner: core.Captioner, coco_images: list[Path]) -> None:
    for p in coco_images[:6]:
        words = captioner.caption(p, num_beams=1, max_new_tokens=30, no_repeat_ngram_size=2).split()
        bigrams = list(zip(words, words[1:], strict=False))
        assert len(bigrams) == len(set(bigrams)) or not words


def test_one_bad_image_does_not_lose_the_others(captioner: core.Captioner, coco_images: list[Path],
                                                tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    good = captioner.caption_batch(coco_images[:3], **GREEDY)
    mixed = captioner.caption_batch([coco_images[0], bad, coco_images[1], b"", coco_images[2]],
                                    batch_size=2, errors="return", **GREEDY)
    assert [mixed[0], mixed[2], mixed[4]] == good
    assert isinstance(mixed[1], core.InvalidImageError) and "bad.jpg" in str(mixed[1])
    assert isinstance(mixed[3], core.InvalidImageError) and "empty" in str(mixed[3])
    with pytest.raises(core.InvalidImageError, match="bad.jpg"):
        captioner.caption_batch([coco_images[0], bad], **GREEDY)


def test_argument_validation(captioner: core.Captioner, coco_images: list[Path]) -> None:
    with pytest.raises(TypeError, match="unknown generation option"):
        captioner.caption(coco_images[0], beams=3)
    with pytest.raises(ValueError, match="num_beams"):
        captioner.caption(coco_images[0], num_beams=0)
    with pytest.raises(ValueError, match="batch_size"):
        captioner.caption_batch(coco_images, batch_size=0)
    with pytest.raises(ValueError, match="errors"):
        captioner.caption_batch(coco_images, errors="ignore")  # type: ignore[arg-type]


def test_concurrent_callers_get_their_own_captions(captioner: core.Captioner, coco_images: list[Path]) -> None:
    expected = {str(p): captioner.caption(p, **GREEDY) for p in coco_images[:6]}
    got: dict[str, str] = {}
    errors: list[BaseException] = []

    def work(p: Path) -> None:
        try:
            got[str(p)] = captioner.caption(p, **GREEDY)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(p,)) for p in coco_images[:6] * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and got == expected


def test_bfloat16_on_cpu_runs(tiny_model_dir: Path, coco_images: list[Path]) -> None:
    c = core.Captioner(str(tiny_model_dir), device="cpu", dtype="bfloat16")
    assert c.model.dtype == torch.bfloat16 and c.info["dtype"] == "bfloat16"
    assert all(isinstance(x, str) for x in c.caption_batch(coco_images[:2], **GREEDY))


def test_module_level_api_caches_the_model(tiny_model_dir: Path, coco_images: list[Path],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    clear_cache()
    a = core.get_captioner(str(tiny_model_dir), device="cpu")
    assert core.get_captioner(str(tiny_model_dir), device="cpu") is a
    monkeypatch.setenv("IMG2TEXT_MODEL", str(tiny_model_dir))
    assert core.get_captioner(device="cpu") is a  # the env var names the same model
    text = core.caption(coco_images[0], device="cpu", **GREEDY)
    assert text == a.caption(coco_images[0], **GREEDY)
    assert core.caption_batch(coco_images[:2], device="cpu", **GREEDY) == a.caption_batch(coco_images[:2], **GREEDY)
    clear_cache()


def test_pixel_cap_per_call_overrides_the_captioner_cap(tiny_model_dir: Path, coco_images: list[Path]) -> None:
    # A small instance cap, as a shared cached captioner might have; every call may bring its own.
    cap = core.Captioner(str(tiny_model_dir), device="cpu", dtype="float32", max_pixels=1000)
    sizes = []
    for path in coco_images[:2]:
        with Image.open(path) as im:
            sizes.append(im.width * im.height)
    pixels = max(sizes)
    with pytest.raises(core.InvalidImageError, match="pixels"):
        cap.caption(coco_images[0], **GREEDY)
    wide_open = cap.caption_batch(coco_images[:2], max_pixels=pixels, **GREEDY)
    assert wide_open == cap.caption_batch(coco_images[:2], max_pixels=10**8, **GREEDY)
    assert all(isinstance(c, str) and c for c in wide_open)
    assert cap.caption(coco_images[0], max_pixels=sizes[0], **GREEDY) == wide_open[0]
    # Stricter than the instance cap, on the Pillow path and the plain-JPEG device-decode path.
    for device_decode in (False, True):
        cap.device_decode = device_decode
        out = cap.caption_batch(coco_images[:1], errors="return", max_pixels=sizes[0] - 1, **GREEDY)
        assert isinstance(out[0], core.InvalidImageError), device_decode
    assert cap.max_pixels == 1000  # the call did not change the captioner
    with pytest.raises(ValueError, match="max_pixels"):
        cap.caption_batch(coco_images[:1], max_pixels=0)
