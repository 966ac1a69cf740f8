"""The fast decoder gives exactly ``model.generate``'s tokens, and falls back where it must."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import core
from core.captioning.fast_decode import fast_generate, fast_path_blocker
from core.captioning.generation import GenerationOptions

SETTINGS = [
    {"num_beams": 1, "max_length": 16},
    {"num_beams": 1, "max_new_tokens": 5},
    {"num_beams": 2, "max_length": 16},
    {"num_beams": 3, "max_new_tokens": 7},
    {"num_beams": 4, "max_length": 16},
    {"num_beams": 5, "max_length": 10},
]


def _hf(model: Any, pixels: torch.Tensor, opts: GenerationOptions) -> torch.Tensor:
    with torch.inference_mode():
        return model.generate(pixel_values=pixels, **opts.to_hf_kwargs())


def _set_ids(model: Any, start: int, eos: int) -> None:
    for cfg in (model.config, model.generation_config):
        cfg.decoder_start_token_id, cfg.pad_token_id, cfg.eos_token_id = start, eos, eos


@pytest.fixture(scope="module")
def shaped_model() -> Any:
    """Random-init ViT + GPT-2 shaped like ``ydshieh/vit-gpt2-coco-en`` but small.

    The encoder is narrower than the decoder (``enc_to_dec_proj`` runs) and the LM head is untied:
    a tied random head repeats its input token, so every caption would end at once. The end
    token is one the model emits mid-caption, so rows of a batch end at different steps.
    """
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        VisionEncoderDecoderModel,
        ViTConfig,
        ViTModel,
    )

    torch.manual_seed(0)
    enc = ViTConfig(image_size=32, patch_size=8, hidden_size=48, num_hidden_layers=2,
                    num_attention_heads=4, intermediate_size=96)
    dec = GPT2Config(vocab_size=1000, n_positions=32, n_embd=64, n_layer=2, n_head=4,
                     add_cross_attention=True, tie_word_embeddings=False)
    model = VisionEncoderDecoderModel(encoder=ViTModel(enc), decoder=GPT2LMHeadModel(dec)).eval()
    with torch.no_grad():  # sharper logits, so beams disagree and hypotheses end at varied steps
        model.decoder.lm_head.weight.mul_(8.0)
    _set_ids(model, start=999, eos=999)
    pixels = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    free_run = _hf(model, pixels, GenerationOptions(num_beams=1, max_length=16))
    _set_ids(model, start=999, eos=int(free_run[0, 3]))
    model.test_pixels = pixels
    return model


def test_shaped_model_parity(shaped_model: Any) -> None:
    pixels = shaped_model.test_pixels
    lengths = set()
    for settings in SETTINGS:
        opts = GenerationOptions.from_kwargs(**settings)
        assert fast_path_blocker(shaped_model, opts) is None
        ref = _hf(shaped_model, pixels, opts)
        assert torch.equal(fast_generate(shaped_model, pixels, opts), ref), settings
        eos = shaped_model.generation_config.eos_token_id
        lengths.update(int((row == eos).nonzero()[0]) if (row[1:] == eos).any() else -1 for row in ref)
    assert len(lengths) >= 3  # captions ended at different steps (and some never ended)


def test_single_image_and_odd_batches(shaped_model: Any) -> None:
    pixels = shaped_model.test_pixels
    for n in (1, 3):
        for settings in (SETTINGS[0], SETTINGS[4]):
            opts = GenerationOptions.from_kwargs(**settings)
            assert torch.equal(fast_generate(shaped_model, pixels[:n], opts), _hf(shaped_model, pixels[:n], opts))


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path, sample_images: list[Path]) -> tuple[core.Captioner, torch.Tensor]:
    from PIL import Image

    captioner = core.Captioner(str(tiny_model_dir), device="cpu", dtype="float32")
    images = [Image.open(p).convert("RGB") for p in sample_images]
    return captioner, captioner.preprocess(images)


def test_tiny_model_parity(tiny: tuple[core.Captioner, torch.Tensor]) -> None:
    captioner, pixels = tiny
    for settings in SETTINGS:
        opts = GenerationOptions.from_kwargs(**settings)
        assert captioner.uses_fast_path(opts)
        ref = _hf(captioner.model, pixels, opts)
        assert torch.equal(captioner.generate_ids(pixels, opts), ref), settings


def test_fast_path_can_be_switched_off(tiny_model_dir: Path, sample_images: list[Path],
                                       tiny: tuple[core.Captioner, torch.Tensor]) -> None:
    slow = core.Captioner(str(tiny_model_dir), device="cpu", fast_decode=False)
    assert not slow.uses_fast_path(GenerationOptions())
    assert slow.caption_batch(sample_images) == tiny[0].caption_batch(sample_images)


@pytest.mark.parametrize("settings, reason", [
    ({"do_sample": True, "num_beams": 1, "seed": 3}, "sampling"),
    ({"num_beams": 2, "no_repeat_ngram_size": 2}, "no_repeat_ngram_size"),
    ({"num_beams": 1, "repetition_penalty": 1.3}, "repetition_penalty"),
    ({"num_beams": 1, "max_length": 40}, "position"),
])
def test_unsupported_settings_fall_back_to_generate(shaped_model: Any, settings: dict,
                                                    reason: str, monkeypatch: pytest.MonkeyPatch) -> None:
    opts = GenerationOptions.from_kwargs(**settings)
    assert reason in (fast_path_blocker(shaped_model, opts) or "")
    calls = []
    original = shaped_model.generate
    monkeypatch.setattr(shaped_model, "generate", lambda **kw: calls.append(kw) or original(**kw))
    fast_generate(shaped_model, shaped_model.test_pixels[:2], opts)
    assert len(calls) == 1


def test_generation_config_extras_fall_back(shaped_model: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shaped_model.generation_config, "min_length", 5)
    assert "min_length" in (fast_path_blocker(shaped_model, GenerationOptions()) or "")


def test_bfloat16_fast_path_runs(tiny_model_dir: Path, sample_images: list[Path]) -> None:
    captioner = core.Captioner(str(tiny_model_dir), device="cpu", dtype="bfloat16")
    opts = GenerationOptions.from_kwargs(num_beams=2, max_new_tokens=6)
    assert captioner.uses_fast_path(opts)
    caps = captioner.caption_batch(sample_images[:3], num_beams=2, max_new_tokens=6)
    assert len(caps) == 3 and all(isinstance(c, str) for c in caps)


def test_threads_option_is_scoped(tiny_model_dir: Path, sample_images: list[Path]) -> None:
    before = torch.get_num_threads()
    captioner = core.Captioner(str(tiny_model_dir), device="cpu", threads=1)
    captioner.caption(sample_images[0], num_beams=1)
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads"):
        core.Captioner(str(tiny_model_dir), device="cpu", threads=0)
