"""The opt-in int8 mode (``dtype="int8"``): what is quantised by each kernel (torchao, fbgemm),
that each still captions like float32 on the tiny trained model, that fbgemm's captions equal plain
``generate`` on a model quantised by hand, how the kernel is chosen, and that the CLI offers it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

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


@pytest.fixture(scope="module", params=["torchao", "fbgemm"])
def kernel_int8(request: pytest.FixtureRequest, tiny_model_dir: Path) -> core.Captioner:
    """An int8 captioner on each kernel, whichever this CPU would choose (torchao: eager)."""
    return core.Captioner(str(tiny_model_dir), device="cpu", dtype="int8", int8_kernel=request.param,
                          int8_compile="off")


def test_torchao_every_linear_weight_is_int8_and_embeddings_stay_float(tiny_model_dir: Path) -> None:
    from torchao.quantization import Int8Tensor

    int8 = core.Captioner(str(tiny_model_dir), device="cpu", dtype="int8", int8_kernel="torchao",
                          int8_compile="off")
    assert int8.int8_kernel == "torchao"
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


def test_fbgemm_every_linear_is_dynamically_quantised_and_embeddings_stay_float(tiny_model_dir: Path) -> None:
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    int8 = core.Captioner(str(tiny_model_dir), device="cpu", dtype="int8", int8_kernel="fbgemm")
    assert int8.int8_kernel == "fbgemm" and int8.wait_compiled(0)  # eager: nothing compiles
    model = int8.model
    assert not any(type(m) is torch.nn.Linear or type(m).__name__ == "Conv1D" for m in model.modules())
    quantised = [m for m in model.modules() if isinstance(m, DynamicLinear)]
    # the encoder's linear layers, every decoder projection (7 a layer) and the untied LM head
    encoder = sum(1 for m in model.encoder.modules() if isinstance(m, DynamicLinear))
    assert encoder > 10 and len(quantised) == encoder + 7 * len(model.decoder.transformer.h) + 1
    assert all(m.weight().qscheme() == torch.per_channel_affine for m in quantised)  # a scale per channel
    wte = model.decoder.get_input_embeddings().weight
    assert wte.dtype == torch.float32 and isinstance(model.decoder.lm_head, DynamicLinear)


def test_fbgemm_captions_equal_generate_on_a_model_quantised_by_hand(tiny_model_dir: Path,
                                                                     coco_images: list[Path]) -> None:
    """The reference: transformers' model, GPT-2's Conv1D as Linear, the head untied, then
    ``torch.ao.quantization.quantize_dynamic`` (per-channel weights), one image at a time."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
    from transformers import AutoTokenizer, VisionEncoderDecoderModel, ViTImageProcessor

    model = VisionEncoderDecoderModel.from_pretrained(tiny_model_dir).eval()
    conv1d_to_linear(model.decoder)
    model.decoder.lm_head.weight = torch.nn.Parameter(model.decoder.lm_head.weight.detach().clone())
    quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig}, inplace=True)
    processor = ViTImageProcessor.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    int8 = core.Captioner(str(tiny_model_dir), device="cpu", dtype="int8", int8_kernel="fbgemm")
    for path in coco_images[:6]:
        image = Image.open(path).convert("RGB")
        with torch.no_grad():
            ids = model.generate(pixel_values=processor(images=[image], return_tensors="pt").pixel_values,
                                 num_beams=1, max_length=16)
        want = tokenizer.decode(ids[0], skip_special_tokens=True).strip()
        assert int8.caption(path, num_beams=1, max_length=16) == want, path


def test_the_kernel_follows_the_cpu_and_can_be_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    from core import devices

    monkeypatch.delenv(devices.INT8_KERNEL_ENV, raising=False)
    monkeypatch.setattr(devices, "cpu_flags", lambda: {"avx2", "avx512_vnni"})
    assert devices.int8_kernel() == "torchao"  # int8 dot products: torch._int_mm is fast
    monkeypatch.setattr(devices, "cpu_flags", lambda: {"avx2", "amx_int8"})
    assert devices.int8_kernel("auto") == "torchao"
    monkeypatch.setattr(devices, "cpu_flags", lambda: {"avx2", "fma"})  # e.g. an AVX2-only EPYC
    assert devices.int8_kernel() == "fbgemm"
    monkeypatch.setenv(devices.INT8_KERNEL_ENV, "torchao")
    assert devices.int8_kernel() == "torchao" and devices.int8_kernel("fbgemm") == "fbgemm"
    with pytest.raises(core.ConfigError, match="int8 kernel 'vnni'.*IMG2TEXT_INT8_KERNEL"):
        devices.int8_kernel("vnni")


def test_fbgemm_reports_no_compile_stage(tiny_model_dir: Path) -> None:
    stages: list[str] = []
    core.Captioner(str(tiny_model_dir), device="cpu", dtype="int8", int8_kernel="fbgemm", progress=stages.append)
    assert stages == ["reading weights", "quantising to int8", "ready"]


def test_int8_captions_mostly_agree_with_float32(kernel_int8: core.Captioner, tiny_model_dir: Path,
                                                  coco_images: list[Path]) -> None:
    fp32 = core.Captioner(str(tiny_model_dir), device="cpu", dtype="float32")
    for settings in (GREEDY, {"num_beams": 4}):
        want = fp32.caption_batch(coco_images, **settings)
        got = kernel_int8.caption_batch(coco_images, **settings)
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
