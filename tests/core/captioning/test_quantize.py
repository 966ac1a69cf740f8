"""The opt-in int8 mode (``dtype="int8"``): what is quantised, that it still captions like float32
on the tiny trained model, and that the CLI offers it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import core
from core.captioning.quantize import Int8StepLinear, conv1d_to_linear, quantize_int8

GREEDY = {"num_beams": 1}


@pytest.fixture(scope="module")
def coco_images(tiny_coco_dir: Path) -> list[Path]:
    return sorted((tiny_coco_dir / "val2017").glob("*.jpg"))[:12]


@pytest.fixture(scope="module")
def int8(tiny_model_dir: Path) -> core.Captioner:
    """The cached int8 captioner (the CLI test below reuses it through ``get_captioner``)."""
    return core.get_captioner(str(tiny_model_dir), device="cpu", dtype="int8")


def test_conv1d_to_linear_computes_the_same() -> None:
    from transformers import GPT2Config
    from transformers.models.gpt2.modeling_gpt2 import GPT2Block

    torch.manual_seed(0)
    block = GPT2Block(GPT2Config(n_embd=64, n_head=4, add_cross_attention=True)).eval()
    x, memory = torch.randn(2, 5, 64), torch.randn(2, 7, 64)
    with torch.no_grad():
        want = block(x, encoder_hidden_states=memory)[0]
        assert conv1d_to_linear(block) == 7  # attn c_attn, c_proj; cross q_attn, c_attn, c_proj; mlp c_fc, c_proj
        got = block(x, encoder_hidden_states=memory)[0]
    assert not any(type(m).__name__ == "Conv1D" for m in block.modules())
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_every_linear_weight_is_int8_and_embeddings_stay_float(int8: core.Captioner) -> None:
    from torchao.quantization import Int8Tensor

    model = int8.model
    linears = [m for m in model.encoder.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) > 10 and all(isinstance(m.weight, Int8Tensor) for m in linears)
    steps = [m for m in model.decoder.modules() if isinstance(m, Int8StepLinear)]
    # every decoder projection (7 a layer) and the LM head; no float linear layer left
    assert len(steps) == 7 * len(model.decoder.transformer.h) + 1
    assert all(m.weight_t.dtype == torch.int8 for m in steps)
    assert not any(isinstance(m, torch.nn.Linear) for m in model.decoder.modules())
    assert not any(type(m).__name__ == "Conv1D" for m in model.modules())
    wte = model.decoder.get_input_embeddings().weight
    assert wte.dtype == torch.float32 and not isinstance(wte, Int8Tensor)
    assert isinstance(model.decoder.lm_head, Int8StepLinear)  # untied: the embeddings stay float32
    assert int8.info["dtype"] == "int8" and int8.dtype == torch.float32


def test_int8_captions_mostly_agree_with_float32(int8: core.Captioner, tiny_model_dir: Path,
                                                  coco_images: list[Path]) -> None:
    fp32 = core.Captioner(str(tiny_model_dir), device="cpu", dtype="float32")
    for settings in (GREEDY, {"num_beams": 4}):
        want = fp32.caption_batch(coco_images, **settings)
        got = int8.caption_batch(coco_images, **settings)
        same = sum(a == b for a, b in zip(got, want, strict=True))
        assert all(isinstance(c, str) and c for c in got)
        assert same >= len(want) * 2 // 3, (settings, list(zip(got, want, strict=True)))


def test_step_linear_equals_torchao_int8_linear() -> None:
    """The lean decoder projection computes torchao's symmetric per-token int8 product."""
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 96))
    quantize_(model, Int8DynamicActivationInt8WeightConfig())
    x = torch.randn(3, 5, 64)
    with torch.no_grad():
        want = model(x)
        got = Int8StepLinear(model[0])(x)
        exact = x @ model[0].weight.dequantize().t() + model[0].bias
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert (got - exact).abs().max() < 0.05 * exact.abs().max()  # and it is close to the float product


def test_int8_is_refused_off_the_cpu_and_on_non_float32_models(tiny_model_dir: Path) -> None:
    fp16 = core.Captioner(str(tiny_model_dir), device="cpu", dtype="bfloat16")
    with pytest.raises(core.ConfigError, match="float32 model on the CPU"):
        quantize_int8(fp16.model)


def test_cli_dtype_int8(int8: core.Captioner, tiny_model_dir: Path, coco_images: list[Path],
                        tmp_path: Path) -> None:
    from core.cli import main

    out = tmp_path / "caps.jsonl"
    code = main(["caption", *map(str, coco_images[:3]), "--model", str(tiny_model_dir), "--device", "cpu",
                 "--dtype", "int8", "--greedy", "--format", "jsonl", "-o", str(out), "--quiet"])
    assert code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["caption"] for r in rows] == int8.caption_batch(coco_images[:3], **GREEDY)
    meta = json.loads(out.with_name(out.name + ".meta.json").read_text())
    assert meta["dtype"] == "int8"
