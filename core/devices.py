"""Pick the device and dtype: auto by default (CUDA, then Apple MPS, then CPU), explicit on request."""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import torch

from core.errors import ConfigError

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}
DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")
# Captioning also runs with int8 weights (float32 arithmetic elsewhere): core.captioning.quantize.
CAPTION_DTYPE_CHOICES = (*DTYPE_CHOICES, "int8")
DEVICE_HELP = "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps"


def resolve_device(spec: str | torch.device | None = None) -> torch.device:
    """Turn ``None``/``"auto"``/``"cuda:1"``/... into a usable ``torch.device``.

    Raises:
        ConfigError: the device is unknown or not available on this machine (a ValueError).
    """
    if isinstance(spec, torch.device):
        return spec
    if spec is None or spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(spec)
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {spec!r}; use {DEVICE_HELP}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {spec!r} requested but CUDA is not available; use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {spec!r} requested but Apple MPS is not available")
    return device


def cpu_flags() -> set[str]:
    """This CPU's feature flags (``/proc/cpuinfo``); empty where they cannot be read."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[-1].split())
    except OSError:
        pass
    return set()


def cpu_supports_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX); elsewhere it is emulated."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


INT8_KERNELS = ("torchao", "fbgemm")  # the int8 mode's matrix-product kernels (core.captioning.quantize)
INT8_KERNEL_ENV = "IMG2TEXT_INT8_KERNEL"  # overrides the choice: torchao or fbgemm


def int8_kernel(spec: str | None = "auto") -> str:
    """The int8 mode's kernel on this CPU: ``"torchao"`` (``torch._int_mm``, per-token activation
    scales, the encoder compiled) where the CPU has int8 dot-product instructions (AVX-512 VNNI or
    AMX), else ``"fbgemm"`` (torch's dynamically quantised ``Linear``, eager) where torch has it.

    Without those instructions ``torch._int_mm`` runs ~35x slower than a float32 product (measured
    on an AVX2-only AMD EPYC, docs/benchmarks.md), so int8 would be slower than float32 there;
    fbgemm's AVX2 kernels are faster than float32 on the same CPU. ``spec`` (or
    ``$IMG2TEXT_INT8_KERNEL`` when ``spec`` is "auto"/None) forces one.

    Raises:
        ConfigError: an unknown kernel name.
    """
    import os

    choice = spec if spec not in (None, "auto") else os.environ.get(INT8_KERNEL_ENV, "auto") or "auto"
    if choice == "auto":
        if {"avx512_vnni", "amx_int8"} & cpu_flags():
            return "torchao"
        return "fbgemm" if "fbgemm" in torch.backends.quantized.supported_engines else "torchao"
    if choice not in INT8_KERNELS:
        raise ConfigError(f"int8 kernel {choice!r}: choose auto, {' or '.join(INT8_KERNELS)} "
                          f"(argument int8_kernel or ${INT8_KERNEL_ENV})")
    return str(choice)


def quantize_fbgemm(model: torch.nn.Module, names: Iterable[str] | None = None) -> None:
    """The ``"fbgemm"`` int8 kernel, in place: ``model``'s ``nn.Linear`` layers (every one, or
    those ``names`` lists) become torch's dynamically quantised int8 ``Linear``: int8 weights with
    one scale per output channel, the input quantised with one scale per call."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    spec = ({torch.nn.Linear: per_channel_dynamic_qconfig} if names is None
            else dict.fromkeys(names, per_channel_dynamic_qconfig))
    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao
        warnings.simplefilter("ignore")
        quantize_dynamic(model, spec, inplace=True)


def resolve_dtype(spec: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``auto`` means bfloat16 on a GPU that supports it and float32 everywhere else.

    CPUs stay on float32 even with native bfloat16: bfloat16 must first give the same captions
    as float32 for >= 95% of images (``python -m bench --only caption`` reports the share), and
    without AVX-512 BF16/AMX it is emulated and several times slower. ``dtype="bfloat16"``
    remains available on every device.
    """
    if isinstance(spec, torch.dtype):
        return spec
    if spec is None or spec == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    try:
        return _DTYPES[spec]
    except KeyError:
        raise ConfigError(f"unknown dtype {spec!r}; choose one of {', '.join(DTYPE_CHOICES)}") from None


def precision_name(spec: str | torch.dtype | None, device: torch.device) -> str:
    """How a captioner runs: ``"int8"`` (quantised weights), else the dtype's name (``"float32"``).

    Raises:
        ConfigError: an unknown dtype name.
    """
    if spec == "int8":
        return "int8"
    return str(resolve_dtype(spec, device)).removeprefix("torch.")
