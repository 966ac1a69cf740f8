"""Embedding rows of ``python -m bench --only search``: pretrained encoders at real size.

CLIP ViT-B/32, SigLIP base (patch 16, 224 px) and DINOv2 small, each built from its default
config with random weights (the speed does not depend on the values), embed the same JPEG files
two ways in one run: the project's path (``core.search.embed_images``: ``core.load_image`` with
its caps, the model's processor on each batch, the model's own image features, L2-normalised;
bf16 on a GPU) and the plain reference loop (``PIL.Image.open(...).convert("RGB")``, the same
processor, ``get_image_features`` / the CLS token). The two must agree (cosine reported). On a
CPU a third row embeds with the opt-in int8 image tower (``--encoder-dtype int8``); its one-off
quantise + compile time is reported apart. The paths are timed in turn, three rounds.
"""

from __future__ import annotations

import copy
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from bench.common import AreaResult, Row, interleaved_best

BATCH = 32


def _models() -> list[tuple[str, str, Any, Any]]:
    """``(label, family, model, image processor)`` at the real architectures' sizes."""
    from transformers import (
        BitImageProcessor,
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        Dinov2Config,
        Dinov2Model,
        SiglipConfig,
        SiglipImageProcessor,
        SiglipModel,
    )

    dino = Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, image_size=518, patch_size=14)
    dino_proc = BitImageProcessor(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224},
                                  do_center_crop=True, image_mean=[0.485, 0.456, 0.406],
                                  image_std=[0.229, 0.224, 0.225])
    return [
        ("CLIP ViT-B/32", "clip", CLIPModel(CLIPConfig()), CLIPImageProcessor()),  # defaults = ViT-B/32, 224 px
        ("SigLIP base/16-224", "siglip", SiglipModel(SiglipConfig()), SiglipImageProcessor()),
        ("DINOv2 small/14", "dinov2", Dinov2Model(dino), dino_proc),
    ]


def _images(n: int, folder: Path) -> list[Path]:
    """Tiny COCO's JPEGs when ``$TINY_COCO_DIR`` is set (repeated up to ``n``), else generated ones."""
    root = os.environ.get("TINY_COCO_DIR")
    found = sorted(Path(root).glob("*2017/*.jpg")) if root else []
    if not found:
        rng = np.random.default_rng(0)
        for i in range(16):
            p = folder / f"img{i}.jpg"
            Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(p, quality=90)
            found.append(p)
    return [found[i % len(found)] for i in range(n)]


def _reference(model: Any, processor: Any, family: str, paths: list[Path], device: torch.device,
               dtype: torch.dtype) -> torch.Tensor:
    out = []
    for start in range(0, len(paths), BATCH):
        images = []
        for p in paths[start:start + BATCH]:
            with Image.open(p) as im:
                images.append(im.convert("RGB"))
        inputs = {k: v.to(device, dtype) for k, v in processor(images=images, return_tensors="pt").items()}
        with torch.inference_mode():
            feats = (model(**inputs).pooler_output if family == "dinov2"
                     else model.get_image_features(**inputs).pooler_output)
        out.append(F.normalize(feats.float(), dim=1).cpu())
    return torch.cat(out)


def embedding_rows(res: AreaResult, device: torch.device, quick: bool) -> None:
    """Add a reference and a project row per encoder (images/s, same files, same run)."""
    from core.devices import resolve_dtype

    n = BATCH * (1 if quick else 4)
    dtype = resolve_dtype("auto", device)
    res.settings["embedding"] = (f"{n} JPEG files per encoder, batch {BATCH}, random weights at real size, "
                                 f"{dtype} on {device.type}")
    with tempfile.TemporaryDirectory(prefix="bench-encoders-") as tmp:
        paths = _images(n, Path(tmp))
        for label, family, model, processor in _models():
            _encoder_rows(res, label, family, model.to(device, dtype).eval(), processor, paths, device, dtype)


def _encoder_rows(res: AreaResult, label: str, family: str, model: Any, processor: Any, paths: list[Path],
                  device: torch.device, dtype: torch.dtype) -> None:
    """The loop, the project and (on a CPU) the project with the opt-in int8 tower, interleaved."""
    from core.search import embed_images
    from core.search.pretrained import encoder_from_model

    out: dict[str, torch.Tensor] = {}
    encoders = {"project": encoder_from_model(model, processor, family)}
    fns = {"reference": lambda: out.update(reference=_reference(model, processor, family, paths, device, dtype)),
           "project": lambda: out.update(project=_embed(encoders["project"], paths, device))}
    compile_s = None
    if device.type == "cpu":
        t0 = time.perf_counter()  # quantising, then the first batch (torchao: builds the compiled tower)
        encoders["int8"] = encoder_from_model(copy.deepcopy(model), processor, family, int8=True)
        embed_images(encoders["int8"], paths[:BATCH], batch_size=BATCH, device=device, progress=False)
        compile_s = time.perf_counter() - t0
        fns["int8"] = lambda: out.update(int8=_embed(encoders["int8"], paths, device))
    best = interleaved_best(fns, device)
    n = len(paths)
    ref = res.add(Row(f"{label}: processor + model loop", "reference", n / best["reference"],
                      notes="PIL open/convert, processor per batch, get_image_features"))
    res.add(Row(f"{label}: core.search.embed_images", "project", n / best["project"],
                notes=f"core.load_image + batched processor; min cosine to the loop {_min_cos(out, 'project'):.4f}"),
            vs=ref.name)
    if compile_s is not None:
        compiled = encoders["int8"].encoder.compiled is not None  # torchao compiles; fbgemm runs eagerly
        kernel = "torchao, compiled" if compiled else "fbgemm, eager"
        res.add(Row(f"{label}: embed_images, int8 tower (opt-in)", "project", n / best["int8"],
                    notes=f"int8 ({kernel}); quantise + first batch {compile_s:.1f} s once (not in the rate); "
                    f"min cosine to float32 {_min_cos(out, 'int8'):.4f}"), vs=ref.name)


def _embed(encoder: Any, paths: list[Path], device: torch.device) -> torch.Tensor:
    from core.search import embed_images

    return embed_images(encoder, paths, batch_size=BATCH, device=device, progress=False).embeddings


def _min_cos(out: dict[str, torch.Tensor], name: str) -> float:
    return float((out[name] * out["reference"]).sum(dim=1).min())
