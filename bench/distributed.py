"""Ray path vs the single-process caption loop: same model, batch size, images and cores.

Reference: ``core.iter_caption_records`` in one process with ``cores`` torch threads.
Project: ``core.distributed.caption_to_parts`` on a Ray cluster started for the run
(``address="local"``) with ``cores`` actors of one CPU each (or one actor per GPU). Reported:
images/s end to end (cluster start, actor start-up and parts included), images/s once the
actors are up, and the actor start-up time on its own.

Both measure 1,000 images (``--quick``: 48 on a CPU, 200 on a GPU). On a CPU machine the model is
a small random-init ViT-GPT2 so the run finishes in minutes; on a GPU machine it is the full-size
vit-gpt2-coco-en architecture (random init).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

from bench.caption import build_model_dir, jpeg_files
from bench.common import AreaResult, Row


def build_small_model_dir(folder: Path) -> Path:
    """A random-init ViT-GPT2 at a fraction of the real size (224 px, 4+4 layers, width 256)."""
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        VisionEncoderDecoderModel,
        ViTConfig,
        ViTModel,
    )

    build_model_dir(folder)  # processor + tokenizer (and a full model, replaced below)
    torch.manual_seed(0)
    enc = ViTConfig(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024)
    dec = GPT2Config(n_embd=256, n_layer=4, n_head=4, add_cross_attention=True, tie_word_embeddings=False)
    model = VisionEncoderDecoderModel(encoder=ViTModel(enc), decoder=GPT2LMHeadModel(dec))
    for cfg in (model.config, model.generation_config):
        cfg.decoder_start_token_id = cfg.pad_token_id = cfg.eos_token_id = cfg.bos_token_id = 50256
    for stale in folder.glob("*.safetensors"):
        stale.unlink()
    model.save_pretrained(folder)
    return folder


def _image_folder(n: int, folder: Path, coco_dir: Path | None) -> Path:
    """``n`` distinctly named JPEGs (links to Tiny COCO photos, cycled, or generated ones)."""
    images = folder / "images"
    images.mkdir(parents=True)
    for i, src in enumerate(jpeg_files(n, folder, coco_dir)):
        os.symlink(Path(src).resolve(), images / f"img{i:05d}.jpg")
    return images


def run(device: torch.device, quick: bool, coco_dir: Path | None) -> AreaResult:
    import core
    from core.distributed import caption_to_parts

    gpu = device.type == "cuda"
    cores = torch.cuda.device_count() if gpu else max(1, min(os.cpu_count() or 1, 2 if quick else os.cpu_count() or 1))
    n = (200 if quick else 1000) if gpu else (48 if quick else 1000)  # issue #14: 1,000 images
    batch = 16
    tmp = Path(tempfile.mkdtemp(prefix="bench-distributed-"))
    model_dir = (build_model_dir if gpu else build_small_model_dir)(tmp / "model")
    images = _image_folder(n, tmp, coco_dir)
    shard = max(batch, (n // (cores * 4)) // batch * batch)  # a few shards per actor, whole batches
    res = AreaResult("distributed", {
        "model": ("vit-gpt2-coco-en architecture" if gpu else "small ViT-GPT2 (224 px, 4+4 layers, width 256)")
                 + ", random init", "images": n, "batch": batch, "shard_size": shard,
        "cores_or_gpus": cores, "max_new_tokens": 16,
        "input": "JPEG files" + (" (Tiny COCO val2017, cycled)" if coco_dir else " (generated)"),
    })
    gen = {"max_new_tokens": 16}
    paths = sorted(images.glob("*.jpg"))
    before = torch.get_num_threads()
    torch.set_num_threads(1 if gpu else cores)
    try:
        captioner = core.get_captioner(str(model_dir), device=str(device))
        list(core.iter_caption_records(captioner, [(str(p), p) for p in paths[:batch]], batch_size=batch, **gen))
        start = time.perf_counter()
        records = list(core.iter_caption_records(captioner, [(str(p), p) for p in paths], batch_size=batch, **gen))
        single = time.perf_counter() - start
    finally:
        torch.set_num_threads(before)
    res.add(Row(f"single process iter_caption_records ({cores} threads)", "reference", n / single,
                notes="model loaded and warmed up before timing"))
    # A throw-away loopback cluster: no auth token (Ray would otherwise write ~/.ray/auth_token,
    # which then switches token auth on for every later `ray start` on this machine).
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    summary = caption_to_parts(images, tmp / "out", address="local", model=str(model_dir),
                               batch_size=batch, shard_size=shard, concurrency=cores,
                               num_cpus_per_actor=1, num_gpus_per_actor=1 if gpu else 0,
                               progress=False, **gen)
    steady = summary.wall_s - summary.connect_s - (summary.actor_startup_s or 0.0)
    res.add(Row(f"ray, {cores} actors, end to end", "project", summary.images / summary.wall_s,
                notes=f"includes starting a local cluster ({summary.connect_s:.1f} s) and the actors"),
            vs=res.rows[0].name)
    res.add(Row(f"ray, {cores} actors, once started", "project", summary.images / steady,
                notes="parts written by the driver included"), vs=res.rows[0].name)
    res.add(Row("ray actor start-up (submit -> first actor ready)", "floor",
                summary.actor_startup_s or 0.0, unit="s", notes="process start, imports, model load"))
    if gpu:  # two actors share each GPU: one decodes and writes while the other computes
        shared = caption_to_parts(images, tmp / "out2", address="local", model=str(model_dir),
                                  batch_size=batch, shard_size=shard, concurrency=2 * cores,
                                  num_cpus_per_actor=1, num_gpus_per_actor=0.5, progress=False, **gen)
        steady2 = shared.wall_s - shared.connect_s - (shared.actor_startup_s or 0.0)
        res.add(Row(f"ray, {2 * cores} actors (2 per GPU), once started", "project", shared.images / steady2,
                    notes="num_gpus_per_actor=0.5"), vs=res.rows[0].name)
    from core.distributed import read_parts

    table = read_parts(tmp / "out")
    local = {r.path: r.caption for r in records}
    same = sum(local[p] == c for p, c in zip(table["path"].to_pylist(), table["caption"].to_pylist(), strict=True))
    res.extra["captions_equal_to_single_process"] = f"{same}/{table.num_rows}"
    res.extra["summary"] = summary.line()
    shutil.rmtree(tmp, ignore_errors=True)
    return res
