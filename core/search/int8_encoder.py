"""Opt-in int8 image towers for pretrained encoders on a CPU (``load_pretrained(..., dtype="int8")``).

What changes: every linear layer of the image tower (CLIP/SigLIP's vision model and projection,
all of DINOv2) keeps int8 weights with one scale per output channel and quantises its input per
token on the fly (torchao's ``Int8DynamicActivationInt8WeightConfig``, as the captioner's int8
mode). The text tower stays float32, so text queries are unchanged. Eager int8 is *slower* than
float32 for these towers on a CPU (its quantise/rescale passes over large activations are not
fused), so the tower is compiled (``torch.compile``) for one batch size: the first batch it sees.
A smaller batch (the last one of a gallery) is padded to that size with copies of its last image
and cut back, so one build serves a whole run; each image's vector does not depend on the other
images of its batch.

Compiling takes tens of seconds on two cores (the first batch pays it), and each int8 vector
differs slightly from float32's (min cosine 0.997-0.9998 in ``python -m bench --only search``), so
float32 stays the default; int8 embeds 1.5-2.4x faster once built and pays from about 500 (SigLIP) to
1,300 (CLIP, DINOv2) images (docs/benchmarks.md). That is the ``"torchao"`` kernel, for CPUs with
int8 dot-product instructions (AVX-512 VNNI, AMX); elsewhere ``torch._int_mm`` is far slower than
float32, so the ``"fbgemm"`` kernel is used (:func:`core.devices.int8_kernel` chooses): torch's
dynamically quantised ``Linear``, eager, nothing to build (x1.45 over float32 for CLIP on an
AVX2-only EPYC), with one activation scale per layer call, so there a vector depends slightly
on the other images of its batch. The index records
``"precision": "int8"`` in its preprocessing; it can be searched with the float32 encoder.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import nn
from torch.nn.modules.linear import NonDynamicallyQuantizableLinear

from core.errors import ConfigError

INT8 = "int8"
_TEXT_PREFIXES = ("text_model", "text_projection")  # dual encoders' text tower: stays float32


def check_int8_device(device: torch.device) -> None:
    """int8 is a CPU mode: refuse another device with the fix.

    Raises:
        ConfigError: ``device`` is not the CPU.
    """
    if device.type != "cpu":
        raise ConfigError(f"encoder dtype int8 runs on the CPU (device is {device.type}); on a GPU the "
                          "encoder runs in bfloat16 (dtype auto), or pass --device cpu")


def quantise_image_tower(model: nn.Module, kernel: str = "auto") -> str:
    """Give every ``nn.Linear`` of ``model`` outside the text tower int8 weights, in place.

    ``kernel`` (:func:`core.devices.int8_kernel`; ``"auto"``: this CPU's fast one): ``"torchao"``
    (per-token activation scales; the tower is then compiled, :class:`CompiledTower`) or
    ``"fbgemm"`` (torch's dynamically quantised ``Linear``: one activation scale per layer call,
    so a vector depends slightly on its batch-mates; eager, nothing to build).

    Returns the kernel used.

    Raises:
        ConfigError: torchao is missing, the model is not float32 on the CPU, or an unknown kernel.
    """
    from core.devices import int8_kernel, quantize_fbgemm

    kernel = int8_kernel(kernel)
    weight = next(model.parameters())
    if weight.device.type != "cpu" or weight.dtype != torch.float32:
        raise ConfigError(f"int8 quantises a float32 encoder on the CPU (got {weight.dtype} on {weight.device.type})")
    picked = {name for name, module in model.named_modules()
              if isinstance(module, nn.Linear) and not name.startswith(_TEXT_PREFIXES)}
    if kernel == "fbgemm":
        # fbgemm's layers hold no .weight tensor: the layers model code reads one from stay float32
        # here (nn.MultiheadAttention's out_proj in SigLIP's pooling head; SigLIP 2's linear patch
        # embedding, whose weight dtype it reads)
        quantize_fbgemm(model, {n for n in picked
                                if not isinstance(model.get_submodule(n), NonDynamicallyQuantizableLinear)
                                and "embed" not in n.rsplit(".", 1)[-1]})
        return kernel
    try:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
    except ImportError as exc:  # pragma: no cover - torchao is a project dependency
        raise ConfigError("encoder dtype int8 needs torchao: pip install torchao") from exc
    # torch's AOT cache asks tensor subclasses for a stable hash torchao does not provide yet (no
    # on-disk reuse of that one cache layer): noise for the user
    warnings.filterwarnings("ignore", message="Int8Tensor does not implement _stable_hash")
    quantize_(model, Int8DynamicActivationInt8WeightConfig(),
              filter_fn=lambda module, name: isinstance(module, nn.Linear) and name in picked)
    return kernel


def pad_batch(batch: dict[str, torch.Tensor], size: int) -> dict[str, torch.Tensor]:
    """Each tensor's first dimension padded to ``size`` with copies of its last row (always a new
    tensor, so padded and full batches are alike to the compiler's guards).

    Shape:
        each ``(n, ...)`` with ``n <= size`` -> ``(size, ...)``.
    """
    out = {}
    for key, value in batch.items():
        missing = max(0, size - value.shape[0])
        out[key] = torch.cat([value, value[-1:].expand(missing, *value.shape[1:])])
    return out


class CompiledTower:
    """An image tower's features through ``torch.compile``, for one batch size.

    ``features(batch)`` computes a batch's image features. The first call fixes the batch size;
    smaller batches are padded to it (:func:`pad_batch`) and cut back, a larger one makes that the
    size (one more build).

    Shape:
        ``__call__(batch)``: each tensor ``(B, ...)`` -> ``(B, D)``.
    """

    def __init__(self, features: Callable[[dict[str, torch.Tensor]], torch.Tensor]) -> None:
        self.batch_size = 0  # the size the compiled graph was built for (0: not yet)
        self._compiled = torch.compile(features, dynamic=False)

    def __call__(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        n = next(iter(batch.values())).shape[0]
        self.batch_size = max(self.batch_size, n)
        with torch.inference_mode():  # inputs made here are inference tensors, padded or not
            out: torch.Tensor = self._compiled(pad_batch(batch, self.batch_size))
        return out[:n]


__all__ = ["INT8", "CompiledTower", "check_int8_device", "pad_batch", "quantise_image_tower"]
