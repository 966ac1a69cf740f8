"""Pretrained image backbones from Hugging Face: CLIP, SigLIP, SigLIP 2 and DINOv2.

One place that finds a model (hub id, ``id@revision`` or a local ``save_pretrained`` folder),
tells its family from ``config.json``'s ``model_type``, hashes its safetensors weights and loads
it with the family's own class and processor. Search (``core.search.pretrained``) embeds with
it; SimCLR fine-tuning (``core.ssl.backbone_model``) trains its image tower. Weights load from
safetensors only, never with ``trust_remote_code``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.errors import CheckpointError, ConfigError, ModelUnavailableError
from core.fileio import sha256_file

WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"
# What a snapshot download fetches: configs, safetensors weights, tokenizer and processor files.
HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja"]


@dataclass(frozen=True)
class Family:
    """A kind of pretrained encoder: its transformers class and whether it has a text tower."""

    name: str
    model_class: str  # a class of ``transformers`` (from_pretrained with safetensors)
    dual: bool  # image and text towers in one embedding space (text-to-image search)


FAMILIES = {
    "clip": Family("clip", "CLIPModel", True),
    "siglip": Family("siglip", "SiglipModel", True),
    "siglip2": Family("siglip2", "Siglip2Model", True),
    "dinov2": Family("dinov2", "Dinov2Model", False),
}


@dataclass(frozen=True)
class SuggestedEncoder:
    """A pretrained encoder worth trying for search (``img2text models``)."""

    id: str
    family: str
    dimension: int  # embedding width
    parameters: str  # whole model, text tower included (approximate, from the model card)
    licence: str
    text: bool  # has a text tower: text-to-image search by meaning


SUGGESTED_ENCODERS = (
    SuggestedEncoder("openai/clip-vit-base-patch32", "clip", 512, "151M", "MIT", True),
    SuggestedEncoder("openai/clip-vit-base-patch16", "clip", 512, "150M", "MIT", True),
    SuggestedEncoder("openai/clip-vit-large-patch14", "clip", 768, "428M", "MIT", True),
    SuggestedEncoder("google/siglip-base-patch16-224", "siglip", 768, "203M", "Apache-2.0", True),
    SuggestedEncoder("google/siglip2-base-patch16-224", "siglip2", 768, "375M", "Apache-2.0", True),
    SuggestedEncoder("google/siglip2-so400m-patch14-384", "siglip2", 1152, "1.1B", "Apache-2.0", True),
    SuggestedEncoder("facebook/dinov2-small", "dinov2", 384, "22M", "Apache-2.0", False),
    SuggestedEncoder("facebook/dinov2-base", "dinov2", 768, "86M", "Apache-2.0", False),
)


@dataclass(frozen=True)
class BackboneSource:
    """Where a pretrained model's files are, and what identifies them."""

    id: str  # the hub id or the folder as given
    revision: str | None  # the resolved hub commit (None for a local folder)
    folder: Path  # local folder holding config.json, the weights and the processor files
    family: Family
    sha256: str  # of the weights file (or of the shard list with each shard's sha256)
    config: dict[str, Any]  # config.json

    @property
    def spec(self) -> str:
        """``id@revision`` (or the folder): what reloads exactly these weights."""
        return f"{self.id}@{self.revision}" if self.revision else self.id

    @property
    def dimension(self) -> int:
        """Width of the image embedding: CLIP's projection, SigLIP's pooled, DINOv2's CLS."""
        cfg = self.config
        if self.family.name == "clip":
            return int(cfg.get("projection_dim", 512))
        if self.family.name in ("siglip", "siglip2"):
            return int(cfg.get("vision_config", {}).get("hidden_size", 768))
        return int(cfg.get("hidden_size", 768))

    def record(self) -> dict[str, Any]:
        """What an index or run records about this encoder."""
        return {"id": self.id, "revision": self.revision, "sha256": self.sha256,
                "family": self.family.name, "dimension": self.dimension}


def split_spec(spec: str | os.PathLike[str]) -> tuple[str, str | None]:
    """``"org/name@rev"`` -> ``("org/name", "rev")``; a path that exists is kept whole."""
    raw = os.fspath(spec)
    if Path(raw).expanduser().exists() or "@" not in raw:
        return raw, None
    name, _, revision = raw.partition("@")
    return name, revision or None


def resolve_backbone(spec: str | os.PathLike[str], *, hash_weights: bool = True) -> BackboneSource:
    """Find a pretrained encoder's files (local folder, hub cache, then the hub) and its family.

    ``hash_weights=False`` skips hashing the weights (``sha256`` is then ``""``): for building
    an architecture whose weights come from elsewhere.

    Raises:
        ModelUnavailableError: not a folder, not cached and the hub cannot be reached.
        ConfigError: ``model_type`` is not one of :data:`FAMILIES`.
        CheckpointError: no safetensors weights (pickled weights are refused).
    """
    name, revision = split_spec(spec)
    local = Path(name).expanduser()
    if local.is_dir():
        folder, resolved = local.resolve(), None
    elif name.startswith((".", "/", "~")):
        raise ModelUnavailableError(f"encoder folder {name!r} does not exist; pass a folder written "
                                    "by save_pretrained() or a hub id such as openai/clip-vit-base-patch32")
    else:
        folder = _snapshot(name, revision)
        resolved = folder.name  # snapshots/<commit>
    config = _read_config(folder, name)
    model_type = str(config.get("model_type", ""))
    if model_type not in FAMILIES:
        raise ConfigError(f"{name}: model_type {model_type!r} is not a supported encoder family; "
                          f"use one of {', '.join(FAMILIES)} (CLIP, SigLIP, SigLIP 2, DINOv2)")
    digest = weights_sha256(folder) if hash_weights else ""
    return BackboneSource(name, resolved, folder, FAMILIES[model_type], digest, config)


def _snapshot(name: str, revision: str | None) -> Path:
    """The local snapshot of a hub repository: the cache first, then one download."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(name, revision=revision, allow_patterns=HUB_PATTERNS,
                                      local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        pass
    try:
        return Path(snapshot_download(name, revision=revision, allow_patterns=HUB_PATTERNS))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as exc:
        raise ModelUnavailableError(
            f"cannot load encoder {name!r}{'@' + revision if revision else ''}: not in the Hugging "
            f"Face cache and the hub could not be asked ({str(exc).splitlines()[0]}). Download it "
            f"once elsewhere (`hf download {name}`) and copy the cache, or pass a local folder."
        ) from exc


def _read_config(folder: Path, name: str) -> dict[str, Any]:
    path = folder / "config.json"
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as exc:
        raise ModelUnavailableError(f"encoder {name!r}: cannot read {path} ({exc}); pass a folder "
                                    "written by save_pretrained()") from exc


def weights_sha256(folder: Path) -> str:
    """sha256 of ``model.safetensors``; for sharded weights, of the sorted ``name sha256`` lines.

    Raises:
        CheckpointError: the folder holds no safetensors weights.
    """
    single = folder / WEIGHTS_FILE
    if single.is_file():
        return sha256_file(single)
    index = folder / WEIGHTS_INDEX
    if index.is_file():
        import hashlib

        shards = sorted(set(json.loads(index.read_text()).get("weight_map", {}).values()))
        lines = "".join(f"{s} {sha256_file(folder / s)}\n" for s in shards)
        return hashlib.sha256(lines.encode()).hexdigest()
    raise CheckpointError(f"{folder}: no {WEIGHTS_FILE} (nor {WEIGHTS_INDEX}); only safetensors "
                          "weights are loaded (convert pickled .bin weights first)")


def load_backbone_model(source: BackboneSource, *, device: torch.device,
                        dtype: torch.dtype = torch.float32) -> nn.Module:
    """The family's model from safetensors, on ``device`` in ``dtype``, in eval mode."""
    import transformers

    cls = getattr(transformers, source.family.model_class)
    try:
        model = cls.from_pretrained(source.folder, dtype=dtype, use_safetensors=True)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{source.spec}: cannot load {source.family.model_class} from "
                              f"{source.folder} ({str(exc).splitlines()[0]})") from exc
    return model.to(device).eval()  # type: ignore[no-any-return]


def load_processors(source: BackboneSource) -> tuple[Any, Any | None]:
    """``(image processor, text processor or None)``: the model's own, as saved with it.

    The text side is the full processor (its text defaults: SigLIP pads to 64 tokens as trained).
    """
    from transformers import AutoImageProcessor, AutoProcessor

    try:
        image = AutoImageProcessor.from_pretrained(source.folder)
        text = AutoProcessor.from_pretrained(source.folder) if source.family.dual else None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{source.spec}: cannot load its processor from {source.folder} "
                              f"({str(exc).splitlines()[0]})") from exc
    return image, text


def _pooled(out: Any) -> torch.Tensor:
    """transformers 5 returns an output object from ``get_*_features``; 4.x a tensor."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def image_features(model: nn.Module, family: Family, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The model's own image embedding (projected for CLIP/SigLIP, CLS for DINOv2). Shape: (B, D)."""
    if family.dual:
        return _pooled(model.get_image_features(**batch))  # type: ignore[operator]
    return _pooled(model(**batch))  # Dinov2Model: pooler_output = the layer-normed CLS token


def text_features(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The text tower's projected embedding. Shape: (B, D)."""
    return _pooled(model.get_text_features(**batch))  # type: ignore[operator]


def vision_tower(model: nn.Module, family: Family) -> nn.Module:
    """The image-only part of a model (what fine-tuning trains)."""
    return model if not family.dual else model.vision_model  # type: ignore[return-value]


__all__ = [
    "FAMILIES",
    "SUGGESTED_ENCODERS",
    "SuggestedEncoder",
    "BackboneSource",
    "Family",
    "image_features",
    "load_backbone_model",
    "load_processors",
    "resolve_backbone",
    "split_spec",
    "text_features",
    "vision_tower",
    "weights_sha256",
]
