"""Pick the device and dtype: auto by default (CUDA, then Apple MPS, then CPU), explicit on request."""

from __future__ import annotations

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


def cpu_supports_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX); elsewhere it is emulated."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return bool({"avx512_bf16", "amx_bf16"} & set(line.split()))
    except OSError:
        pass
    return False


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
