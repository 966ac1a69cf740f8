"""An index folder that travels: its SimCLR encoder and gallery images copied inside it.

An index records where its encoder's weights and its gallery images were when it was built. Moved
on its own (into a Hugging Face Space, a container, another machine), words search still works
(the captions are in the index), but a search by an uploaded image needs the encoder and result
pictures need the images. :func:`copy_portable` writes a copy of an index that carries both:

    dst/encoder/checkpoint.safetensors   the SimCLR encoder (and its config.json when it had one)
    dst/images/...                       every gallery image (its path under the data set root)
    dst/index.json, ...                  the index, its image paths pointing into images/

The gallery database records each image's path relative to the index folder, so the copy finds
its images wherever it is moved; ``EmbeddingIndex.encoder_for_images`` falls back to
``encoder/`` inside the folder when the recorded weights path is gone (the sha256 is still
checked). A pretrained encoder (CLIP, SigLIP, DINOv2) is not copied: it reloads by its recorded
hub id and revision, which a Space can download.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from core.errors import ConfigError
from core.search.manifest import CheckpointInfo
from core.search.pretrained import encoder_record

ENCODER_DIR = "encoder"  # the SimCLR encoder inside a portable index folder
IMAGES_DIR = "images"  # the gallery images inside a portable index folder
WEIGHTS_FILE = "checkpoint.safetensors"  # the name a run folder gives its weights (core.ssl.checkpoint)


@dataclass(frozen=True)
class PortableCopy:
    """What :func:`copy_portable` wrote."""

    folder: Path  # the new index folder
    encoder: Path | None  # the copied encoder folder; None: a pretrained encoder, or no weights recorded
    images: int  # gallery images copied into images/
    missing: list[str]  # gallery images that were not found (their rows keep their recorded path)


def bundled_encoder(folder: Path | None) -> Path | None:
    """The encoder folder shipped inside the index folder ``folder``, if there is one."""
    if folder is None:
        return None
    candidate = Path(folder) / ENCODER_DIR
    return candidate if (candidate / WEIGHTS_FILE).is_file() else None


def _image_name(row: int, path: Path, relative: str | None) -> Path:
    """Where row ``row``'s image goes under images/: its data-set-relative path when it has a safe
    one, else the row number and file name (two galleries' ``a.jpg`` must not collide)."""
    if relative and not Path(relative).is_absolute() and ".." not in Path(relative).parts:
        return Path(relative)
    return Path(f"{row:08d}-{path.name}")


def _copy_encoder(checkpoint: CheckpointInfo, dst: Path) -> Path | None:
    if encoder_record(checkpoint.config) is not None or not checkpoint.weights_path:
        return None  # a pretrained encoder reloads by hub id; an index from arrays has no encoder
    weights = Path(checkpoint.weights_path)
    if weights.is_dir():
        weights = weights / WEIGHTS_FILE
    if not weights.is_file():
        raise ConfigError(f"the index's encoder {weights} is gone, so a copy could not search by image; "
                          "copy it from a folder whose checkpoint is still there, or rebuild the index "
                          "with `img2text ssl embed`")
    out = dst / ENCODER_DIR
    out.mkdir(parents=True)
    shutil.copy2(weights, out / WEIGHTS_FILE)
    if (weights.parent / "config.json").is_file():  # older weights keep their config beside them
        shutil.copy2(weights.parent / "config.json", out / "config.json")
    return out


def copy_portable(src: str | Path, dst: str | Path, *, images: bool = True) -> PortableCopy:
    """Write a copy of the index folder ``src`` at ``dst`` that carries its encoder and images.

    Args:
        src: a saved index folder.
        dst: the new folder (must not exist, or be empty).
        images: also copy the gallery images (False: the copy searches, but result pictures
            need the images at their recorded paths).

    Raises:
        ConfigError: ``dst`` is not empty, or the index's SimCLR encoder weights are gone.
        FileNotFoundError / CheckpointError: ``src`` is not a readable index.
    """
    from core.search.index import EmbeddingIndex

    dst = Path(dst)
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise ConfigError(f"{dst}: exists and is not an empty folder; give a new folder")
    index = EmbeddingIndex.load(src)
    dst.mkdir(parents=True, exist_ok=True)
    encoder = _copy_encoder(index.checkpoint, dst)
    copied, missing = 0, []
    if images:
        for row, (path, relative) in enumerate(zip(index.paths, index.relative_paths, strict=True)):
            if not Path(path).is_file():
                missing.append(str(path))
                continue
            target = dst / IMAGES_DIR / _image_name(row, Path(path), relative)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
            index.paths[row] = target.resolve()
            copied += 1
        if copied:
            index.data_root = (dst / IMAGES_DIR).resolve()
    index.save(dst)
    return PortableCopy(dst, encoder, copied, missing)
