"""A pretrained encoder (CLIP, SigLIP, SigLIP 2, DINOv2) as an index encoder, text tower included.

:func:`load_pretrained` gives an object with the shape search expects of an encoder
(:class:`core.search.encoder.EncoderLike`), so ``EmbeddingIndex.build(encoder, dataset)`` and
every query path take it unchanged. Images still come through ``core.load_image`` (caps, EXIF,
modes); the model's own image processor prepares each batch; the embedding is the model's own
image feature (``get_image_features(...).pooler_output``; DINOv2's CLS token), L2-normalised
by the embedding code. On a GPU the model runs in bfloat16 unless asked otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from core.devices import resolve_device, resolve_dtype
from core.errors import CheckpointError
from core.search.errors import QueryError
from core.search.int8_encoder import INT8, CompiledTower, check_int8_device, quantise_image_tower

PRETRAINED = "pretrained"  # the ``kind`` an index's checkpoint config records for these encoders
# Text-tower settings per family, as the models were trained (SigLIP: padded to 64 tokens).
_TEXT_KWARGS: dict[str, dict[str, Any]] = {
    "clip": {"padding": True, "truncation": True},
    "siglip": {"padding": "max_length", "truncation": True, "max_length": 64},
    "siglip2": {"padding": "max_length", "truncation": True, "max_length": 64},
}
TEXT_BATCH = 256  # texts per text-tower forward pass


class ImageTower(nn.Module):
    """``forward(**processor_output)`` -> the model's image features. Shape: (B, D).

    ``compiled``: run the features through :class:`core.search.int8_encoder.CompiledTower`
    (the int8 mode: one compiled build per batch size, smaller batches padded).
    """

    def __init__(self, model: nn.Module, family: Any, *, compiled: bool = False) -> None:
        from core.ssl.backbones import image_features

        super().__init__()
        self.model = model
        self.family = family
        self.compiled = CompiledTower(partial(image_features, model, family)) if compiled else None

    def forward(self, **batch: torch.Tensor) -> torch.Tensor:
        from core.ssl.backbones import image_features

        dtype = next(self.model.parameters()).dtype
        cast = {k: v.to(dtype) if v.is_floating_point() else v for k, v in batch.items()}
        if self.compiled is not None:
            return self.compiled(cast)
        return image_features(self.model, self.family, cast)


@dataclass(eq=False)
class PretrainedEncoder:
    """A loaded pretrained encoder: what search reads (``encoder``, ``config``, ``sha256``,
    ``weights_path``, ``transform``) plus batched preprocessing and the text tower."""

    encoder: ImageTower
    config: dict[str, Any]  # {"kind": "pretrained", "encoder": {id, revision, sha256, family, dimension}}
    sha256: str
    weights_path: Path  # the local folder the weights came from
    image_processor: Any
    text_processor: Any | None
    preprocessing: dict[str, Any]

    @property
    def record(self) -> dict[str, Any]:
        """id, revision, sha256, family and dimension."""
        return dict(self.config["encoder"])

    @property
    def family(self) -> str:
        return str(self.record["family"])

    @property
    def has_text(self) -> bool:
        """True for dual encoders (CLIP, SigLIP): text can be embedded into the image space."""
        return self.text_processor is not None

    def prepare_batch(self, images: Sequence[Image.Image]) -> dict[str, torch.Tensor]:
        """The image processor's tensors for a batch of RGB images (what ``encoder`` takes)."""
        out = self.image_processor(images=list(images), return_tensors="pt")
        return {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}

    def transform(self, image: Image.Image) -> dict[str, torch.Tensor]:
        """One image's tensors (batch dimension dropped)."""
        return {k: v[0] for k, v in self.prepare_batch([image]).items()}

    @torch.inference_mode()
    def embed_text(self, texts: Sequence[str], device: str | torch.device | None = None) -> torch.Tensor:
        """Unit-norm text-tower embeddings in the image space. Shape: (len(texts), D), float32.

        Raises:
            QueryError: the encoder has no text tower (DINOv2).
        """
        from core.ssl.backbones import text_features

        if self.text_processor is None:
            raise QueryError(
                f"encoder {self.record['id']} ({self.family}) has no text tower; search by meaning "
                "needs a CLIP or SigLIP index (or use --text-mode words over the captions)")
        model = self.encoder.model
        dev = next(model.parameters()).device if device is None else resolve_device(device)
        if next(model.parameters()).device != dev:  # (int8 weights cannot be re-placed in inference mode)
            model.to(dev)
        chunks = []
        for start in range(0, len(texts), TEXT_BATCH):
            batch = self.text_processor(text=list(texts[start:start + TEXT_BATCH]), return_tensors="pt",
                                        **_TEXT_KWARGS.get(self.family, {}))
            tensors = {k: v.to(dev) for k, v in batch.items() if isinstance(v, torch.Tensor)}
            chunks.append(F.normalize(text_features(model, tensors).float(), dim=1).cpu())
        return torch.cat(chunks) if chunks else torch.zeros(0, int(self.record["dimension"]))


def load_pretrained(
    spec: str | os.PathLike[str], *, device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = "auto",
) -> PretrainedEncoder:
    """Load a CLIP/SigLIP/SigLIP 2/DINOv2 encoder from a hub id (``id@revision``) or a folder.

    Args:
        dtype: ``auto`` = bfloat16 on a capable GPU, float32 elsewhere; ``"int8"`` (CPU, opt-in):
            the image tower in int8 (compiled with the torchao kernel; fbgemm's eager on CPUs
            without int8 dot-product instructions: :mod:`core.search.int8_encoder`), the text
            tower float32.

    Raises:
        ModelUnavailableError: not found / not cached and the hub is unreachable.
        ConfigError: not a supported family; int8 off the CPU. CheckpointError: no safetensors,
            unloadable files.
    """
    from core.ssl.backbones import load_backbone_model, load_processors, resolve_backbone

    int8 = dtype == INT8
    dev = resolve_device(device)
    if int8:
        check_int8_device(dev)
    source = resolve_backbone(spec)
    model = load_backbone_model(source, device=dev, dtype=torch.float32 if int8 else resolve_dtype(dtype, dev))
    kernel = quantise_image_tower(model) if int8 else None
    image_processor, text_processor = load_processors(source)
    preprocessing = {"processor": type(image_processor).__name__,
                     "settings": _jsonable(image_processor.to_dict()), "l2_normalized": True}
    if int8:
        preprocessing["precision"] = INT8
    tower = ImageTower(model, source.family, compiled=kernel == "torchao")
    return PretrainedEncoder(tower, {"kind": PRETRAINED, "encoder": source.record()},
                             source.sha256, source.folder, image_processor, text_processor, preprocessing)


def _jsonable(settings: dict[str, Any]) -> dict[str, Any]:
    keep = (str, int, float, bool, type(None), list, dict)
    return {k: v for k, v in settings.items() if isinstance(v, keep)}


def encoder_record(config: dict[str, Any]) -> dict[str, Any] | None:
    """The pretrained-encoder record of an index's checkpoint config, else None."""
    if config.get("kind") == PRETRAINED and isinstance(config.get("encoder"), dict):
        return dict(config["encoder"])
    return None


def is_dual(config: dict[str, Any]) -> bool:
    """True when an index's checkpoint config names a CLIP/SigLIP encoder (with a text tower)."""
    record = encoder_record(config)
    return record is not None and record.get("family") in _TEXT_KWARGS


def describe(config: dict[str, Any], sha256: str, weights_path: str | Path) -> str:
    """How a message names an encoder: ``id@rev (family, D-d, sha256 ...)`` or the weights path."""
    record = encoder_record(config)
    if record is None:
        return f"checkpoint {weights_path or '(none)'} (sha256 {sha256[:12] or '-'}...)"
    rev = f"@{record['revision']}" if record.get("revision") else ""
    return (f"encoder {record['id']}{rev} ({record['family']}, {record['dimension']}-d, "
            f"sha256 {str(record['sha256'])[:12]}...)")


def reload_recorded(config: dict[str, Any], weights_path: str, device: str | torch.device | None = None
                    ) -> PretrainedEncoder:
    """Load the pretrained encoder an index records: its folder if still there, else id@revision.

    Raises:
        CheckpointError: the config records no pretrained encoder.
    """
    record = encoder_record(config)
    if record is None:
        raise CheckpointError(f"{weights_path}: the index records no pretrained encoder")
    folder = Path(weights_path)
    if weights_path and folder.is_dir():
        return load_pretrained(folder, device=device)
    rev = f"@{record['revision']}" if record.get("revision") else ""
    return load_pretrained(f"{record['id']}{rev}", device=device)




def load_index_encoder(
    checkpoint: str | os.PathLike[str] | None = None, *, pretrained: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None, dtype: str = "auto",
) -> Any:
    """An SSL run's encoder (``checkpoint``) or a pretrained one (``pretrained``): exactly one.

    Args:
        dtype: a pretrained encoder's (see :func:`load_pretrained`); an SSL run's encoder is float32.

    Raises:
        ConfigError: neither or both given; int8 for an SSL run. The loaders' errors otherwise.
    """
    from core.errors import ConfigError
    from core.search.encoder import load_checkpoint

    if (checkpoint is None) == (pretrained is None):
        raise ConfigError("pass exactly one encoder: an SSL run (--checkpoint RUN) or a pretrained "
                          "encoder (--encoder ID[@REVISION] or FOLDER)")
    if pretrained is not None:
        return load_pretrained(pretrained, device=device, dtype=dtype)
    if dtype == INT8:
        raise ConfigError(f"encoder dtype int8 is for pretrained encoders (--encoder ID); {checkpoint} is an "
                          "SSL run's encoder, which runs in float32: leave out --encoder-dtype")
    return load_checkpoint(Path(os.fspath(checkpoint)), device=device)  # type: ignore[arg-type]




def encoder_from_model(model: nn.Module, image_processor: Any, family: str, *, text_processor: Any = None,
                       name: str = "in-memory", int8: bool = False) -> PretrainedEncoder:
    """Wrap an already-built model and its image processor (e.g. random weights for a benchmark).

    The record's sha256 is ``name`` (there is no weights file); ``EmbeddingIndex`` can still
    be built with it, and only this object can query such an index. ``int8``: quantise the
    float32 CPU model's image tower in place (and compile it), as ``load_pretrained(dtype="int8")``.
    """
    from core.ssl.backbones import FAMILIES

    record = {"id": name, "revision": None, "sha256": name, "family": family, "dimension": None}
    preprocessing: dict[str, Any] = {"processor": type(image_processor).__name__, "l2_normalized": True}
    kernel = quantise_image_tower(model) if int8 else None
    if int8:
        preprocessing["precision"] = INT8
    tower = ImageTower(model.eval(), FAMILIES[family], compiled=kernel == "torchao")
    return PretrainedEncoder(tower, {"kind": PRETRAINED, "encoder": record},
                             name, Path(name), image_processor, text_processor, preprocessing)


__all__ = [
    "PRETRAINED",
    "ImageTower",
    "PretrainedEncoder",
    "describe",
    "encoder_from_model",
    "encoder_record",
    "is_dual",
    "load_index_encoder",
    "load_pretrained",
    "reload_recorded",
]
