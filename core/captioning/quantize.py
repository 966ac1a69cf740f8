"""Opt-in int8 weights for captioning on a CPU (``dtype="int8"``), through torchao.

What changes: every linear layer of the ViT encoder and every projection of the GPT-2 decoder
(including the LM head) keeps its weights in int8 with one scale per output channel, and its
input is quantised per token on the fly (torchao's ``Int8DynamicActivationInt8WeightConfig``).
The matrix products then run on int8 (``torch._int_mm``) and read a quarter of the bytes, which is
what a CPU waits for in the decoder's small per-token steps. GPT-2's ``Conv1D`` layers are turned
into the equivalent ``nn.Linear`` first (torchao quantises ``nn.Linear``), and the LM head gets its
own weight (in the checkpoint it shares the token embeddings, which stay float32).

On a CPU the encoder is also compiled (``torch.compile``, dynamic batch size): eager int8 pays
for its quantise/rescale passes over the encoder's large activations, compiled code fuses them.
Loading an int8 captioner therefore includes the compilation (for a batch of one and for
larger batches: tens of seconds on two cores; Inductor caches it on disk for the next process).

Captions can differ from float32's: ``python -m bench --only caption`` reports the share of
identical captions and BLEU-4/CIDEr of int8 captions against float32 ones. Float32 stays the
default.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from core.errors import ConfigError

INT8 = "int8"


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


def quantize_int8(model: Any, *, compile_encoder: bool | None = None) -> None:
    """Give a ViT + GPT-2 ``VisionEncoderDecoderModel`` int8 weights, in place.

    Args:
        model: the loaded float32 model, in eval mode.
        compile_encoder: wrap the encoder in ``torch.compile``; ``None`` = on for CPU models.

    Raises:
        ConfigError: torchao is missing, or the model is not on the CPU or not float32.
    """
    try:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
    except ImportError as exc:  # pragma: no cover - torchao is a project dependency
        raise ConfigError("dtype int8 needs torchao: pip install torchao") from exc
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
    quantize_(model, Int8DynamicActivationInt8WeightConfig())  # every nn.Linear, nothing else
    if compile_encoder if compile_encoder is not None else weight.device.type == "cpu":
        # torch's AOT cache asks tensor subclasses for a stable hash torchao does not provide yet;
        # the only effect is no on-disk reuse of that one cache layer, so the notice is noise.
        warnings.filterwarnings("ignore", message="Int8Tensor does not implement _stable_hash")
        model.encoder = torch.compile(model.encoder, dynamic=True)
        _compile_now(model)


def _compile_now(model: Any) -> None:
    """Compile the encoder for a batch of one and for larger batches now, not at the first caption.

    ``dynamic=True`` still treats a batch of 1 as a special case, so both graphs are built here
    (with a batch of 2 first, which stands for every larger batch).
    """
    size = int(model.config.encoder.image_size)
    channels = int(getattr(model.config.encoder, "num_channels", 3))
    with torch.inference_mode():
        for batch in (2, 1):
            model.encoder(pixel_values=torch.zeros(batch, channels, size, size))
