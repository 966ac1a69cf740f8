"""Opt-in int8 weights for captioning on a CPU (``dtype="int8"``), through torchao or fbgemm.

What changes: every linear layer of the ViT encoder and every projection of the GPT-2 decoder
(including the LM head) keeps its weights in int8 with one scale per output channel, and its
input is quantised per token on the fly (torchao's ``Int8DynamicActivationInt8WeightConfig``).
The matrix products then run on int8 (``torch._int_mm``) and read a quarter of the bytes, which is
what a CPU waits for in the decoder's small per-token steps. GPT-2's ``Conv1D`` layers are turned
into the equivalent ``nn.Linear`` first (torchao quantises ``nn.Linear``), and the LM head gets its
own weight (in the checkpoint it shares the token embeddings, which stay float32).

On a CPU the encoder is also compiled (``torch.compile``, dynamic batch size): eager int8 pays
for its quantise/rescale passes over the encoder's large activations, compiled code fuses them.
The decoder's steps are not compiled (their shapes change every step); their projections run as
:class:`Int8StepLinear`, the same int8 arithmetic as torchao's in five plain ops, because
torchao's eager path spends more time preparing the few rows of a step than multiplying them.
Compiling (for a batch of one and for larger batches) takes tens of seconds to minutes on two
cores, so a :class:`~core.captioning.Captioner` does not wait for it: it captions with the eager
int8 encoder at once and swaps the compiled one in when it is built
(:mod:`core.captioning.int8_compile`; Inductor caches the build on disk for the next process).

That is the ``"torchao"`` kernel, for CPUs with int8 dot-product instructions (AVX-512 VNNI,
AMX). Without them ``torch._int_mm`` is far slower than a float32 product, so there the int8
mode uses the ``"fbgemm"`` kernel instead (:func:`core.devices.int8_kernel` chooses): torch's
dynamically quantised ``Linear`` (``torch.ao.quantization.quantize_dynamic``), whose fbgemm
kernels are fast on AVX2. It quantises each layer's input with one scale per call (per batch,
not per token), runs eagerly and has nothing to compile, so its first caption comes at once.

Captions can differ from float32's: ``python -m bench --only caption`` reports the share of
identical captions and BLEU-4/CIDEr of int8 captions against float32 ones. Float32 stays the
default.
"""

from __future__ import annotations

import warnings
from typing import Any, cast

import torch

from core.errors import ConfigError

INT8 = "int8"
_EPS = torch.finfo(torch.float32).smallest_normal  # smallest activation scale, as torchao clamps it


def conv1d_to_linear(module: torch.nn.Module) -> int:
    """Replace every Hugging Face ``Conv1D`` under ``module`` by the same ``nn.Linear``.

    ``Conv1D`` computes ``x @ W + b`` with ``W`` of shape ``(in, out)``; ``nn.Linear`` stores the
    transpose. Returns how many layers were replaced.
    """
    from transformers.pytorch_utils import Conv1D

    replaced = 0
    for name, child in list(module.named_children()):
        if isinstance(child, Conv1D):
            n_in, n_out = child.weight.shape
            linear = torch.nn.Linear(n_in, n_out, device=child.weight.device, dtype=child.weight.dtype)
            with torch.no_grad():
                linear.weight.copy_(child.weight.t())
                linear.bias.copy_(child.bias)
            setattr(module, name, linear)
            replaced += 1
        else:
            replaced += conv1d_to_linear(child)
    return replaced


def quantize_int8(model: Any, *, compile_encoder: bool = False, kernel: str = "auto") -> str:
    """Give a ViT + GPT-2 ``VisionEncoderDecoderModel`` int8 weights, in place.

    Args:
        model: the loaded float32 model, in eval mode.
        compile_encoder: torchao: also compile the encoder now, before returning
            (:func:`compiled_encoder`); off by default: the Captioner compiles it in the background.
        kernel: ``"torchao"``, ``"fbgemm"`` or ``"auto"`` (:func:`core.devices.int8_kernel`).

    Returns:
        The kernel used.

    Raises:
        ConfigError: torchao is missing, the model is not on the CPU or not float32, or an
            unknown kernel.
    """
    from core.devices import int8_kernel, quantize_fbgemm

    kernel = int8_kernel(kernel)
    weight = next(model.parameters())
    if weight.device.type != "cpu" or weight.dtype != torch.float32:
        raise ConfigError(
            f"dtype int8 quantises a float32 model on the CPU (got {weight.dtype} on "
            f"{weight.device.type}); on a GPU use --dtype bfloat16"
        )
    decoder = model.decoder
    conv1d_to_linear(decoder)
    head = decoder.lm_head
    if head.weight is decoder.get_input_embeddings().weight:  # untie: embeddings stay float32
        head.weight = torch.nn.Parameter(head.weight.detach().clone(), requires_grad=False)
    if kernel == "fbgemm":
        quantize_fbgemm(model)
        return kernel
    try:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
    except ImportError as exc:  # pragma: no cover - torchao is a project dependency
        raise ConfigError("dtype int8 needs torchao: pip install torchao") from exc
    quantize_(model, Int8DynamicActivationInt8WeightConfig())  # every nn.Linear, nothing else
    lean_decoder_steps(decoder)
    if compile_encoder:
        model.encoder = compiled_encoder(model)
    return kernel


class Int8StepLinear(torch.nn.Module):
    """A decoder projection on torchao's int8 weight, with the per-token activation quantisation
    written as five plain ops.

    torchao's eager int8 linear spends more time choosing and applying quantisation parameters
    than multiplying when a decoder step feeds it a few rows (it is built for ``torch.compile``,
    which the step loop does not use); this computes the same symmetric per-row scheme directly:
    ``y = int_mm(round(x / s_x), W_q^T) * s_x * s_w + b`` with ``s_x = max|x| / 127.5`` per row
    (torchao's symmetric mapping onto -128..127).

    Shape:
        input: ``(..., in)``; output: ``(..., out)``.
    """

    weight_t: torch.Tensor  # (in, out) int8
    weight_scale: torch.Tensor  # (out,) float32

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        weight: Any = linear.weight  # a torchao Int8Tensor: int8 ``qdata`` (out, in), ``scale`` (out, 1)
        self.register_buffer("weight_t", weight.qdata.t())  # (in, out) view: the layout _int_mm reads fastest
        self.register_buffer("weight_scale", weight.scale.reshape(-1).to(torch.float32))
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1])
        scale = (rows.abs().amax(dim=1, keepdim=True) / 127.5).clamp_min(_EPS)  # torchao's int8 range
        quantised = torch.round(rows / scale).clamp_(-128, 127).to(torch.int8)
        out = torch._int_mm(quantised, self.weight_t).to(torch.float32)
        out.mul_(self.weight_scale).mul_(scale)
        if self.bias is not None:
            out.add_(self.bias)
        return out.reshape(*x.shape[:-1], out.shape[-1])


def lean_decoder_steps(decoder: torch.nn.Module) -> int:
    """Swap every int8 ``nn.Linear`` under ``decoder`` for :class:`Int8StepLinear`; returns how many."""
    swapped = 0
    for name, child in list(decoder.named_children()):
        if isinstance(child, torch.nn.Linear) and hasattr(child.weight, "qdata"):
            setattr(decoder, name, Int8StepLinear(child))
            swapped += 1
        else:
            swapped += lean_decoder_steps(child)
    return swapped


def compiled_encoder(model: Any) -> torch.nn.Module:
    """The int8 model's encoder under ``torch.compile`` (dynamic batch size), compiled now for a
    batch of one and for larger batches rather than at the first caption; ``model`` is unchanged.

    ``dynamic=True`` still treats a batch of 1 as a special case, so both graphs are built here
    (with a batch of 2 first, which stands for every larger batch). Safe to run in a background
    thread while the eager encoder captions: it only reads the shared weights.
    """
    # torch's AOT cache asks tensor subclasses for a stable hash torchao does not provide yet;
    # the only effect is no on-disk reuse of that one cache layer, so the notice is noise.
    warnings.filterwarnings("ignore", message="Int8Tensor does not implement _stable_hash")
    encoder = model.encoder
    compiled = torch.compile(getattr(encoder, "_orig_mod", encoder), dynamic=True)
    size = int(model.config.encoder.image_size)
    channels = int(getattr(model.config.encoder, "num_channels", 3))
    with torch.inference_mode():
        for batch in (2, 1):
            compiled(pixel_values=torch.zeros(batch, channels, size, size))
    return cast(torch.nn.Module, compiled)  # torch.compile of a Module returns an OptimizedModule
