"""Captioning: the model card's loop and batched ``generate`` vs ``Captioner.caption_batch``.

The model is ``ydshieh/vit-gpt2-coco-en``'s architecture (ViT-B/16 224 px + GPT-2 124M with
cross-attention) with random weights, saved with ``save_pretrained`` and loaded back the way
users load theirs (no hub access here). Its LM head is untied from the token embeddings: a tied
random head keeps predicting its input token (the start token, which is also eos), so every
caption would stop at once; untied, captions run the full ``max_length`` like real ones.
Speed is therefore representative; the caption text is not. "Identical captions" compares
token ids.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from bench.common import AreaResult, Row, best_seconds, median_ms, sync

MAX_LENGTH = 16  # the model card's setting: 15 new tokens after the start token
END = 50256


def build_model_dir(folder: Path) -> Path:
    """Random-init real architecture + processor + a stand-in tokenizer, via ``save_pretrained``."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        GPT2TokenizerFast,
        VisionEncoderDecoderModel,
        ViTConfig,
        ViTImageProcessor,
        ViTModel,
    )

    torch.manual_seed(0)
    dec = GPT2Config(add_cross_attention=True, tie_word_embeddings=False)
    model = VisionEncoderDecoderModel(encoder=ViTModel(ViTConfig()), decoder=GPT2LMHeadModel(dec))
    for cfg in (model.config, model.generation_config):
        cfg.decoder_start_token_id = cfg.pad_token_id = cfg.eos_token_id = END
        cfg.bos_token_id = END
    model.save_pretrained(folder)
    ViTImageProcessor().save_pretrained(folder)
    bpe = ByteLevelBPETokenizer()  # ids beyond its vocabulary decode to nothing; fine for timing
    bpe.train_from_iterator(["a man riding a horse", "a cat on a bed"], vocab_size=300,
                            special_tokens=["<|endoftext|>"])
    GPT2TokenizerFast(tokenizer_object=bpe._tokenizer, eos_token="<|endoftext|>",
                      bos_token="<|endoftext|>", unk_token="<|endoftext|>").save_pretrained(folder)
    return folder


def jpeg_files(n: int, folder: Path, coco_dir: Path | None) -> list[Path]:
    """``n`` JPEG paths: Tiny COCO photos when available (cycled), else generated pictures."""
    if coco_dir is not None:
        photos = sorted((coco_dir / "val2017").glob("*.jpg")) or sorted(coco_dir.rglob("*.jpg"))
        if photos:
            return [photos[i % len(photos)] for i in range(n)]
    gen = torch.Generator().manual_seed(0)
    paths = []
    for i in range(n):
        arr = (torch.rand(480, 640, 3, generator=gen) * 255).to(torch.uint8).numpy()
        path = folder / f"img{i}.jpg"
        Image.fromarray(arr).save(path, quality=90)
        paths.append(path)
    return paths


def _card_loop(model: Any, processor: Any, tokenizer: Any, paths: list[Path], **gen: Any) -> list:
    """The model card's ``predict_step``, one image at a time."""
    out = []
    for path in paths:
        image = Image.open(path)
        if image.mode != "RGB":
            image = image.convert(mode="RGB")
        pixel_values = processor(images=[image], return_tensors="pt").pixel_values.to(model.device, model.dtype)
        output_ids = model.generate(pixel_values, max_length=MAX_LENGTH, **gen)
        tokenizer.batch_decode(output_ids, skip_special_tokens=True)
        out.append(output_ids[0].tolist())
    return out


def _batched_generate(model: Any, processor: Any, tokenizer: Any, paths: list[Path], batch: int,
                      **gen: Any) -> list:
    """What a user writes to batch the card's code: PIL images in, ``generate`` per chunk."""
    out = []
    for i in range(0, len(paths), batch):
        images = [Image.open(p).convert("RGB") for p in paths[i : i + batch]]
        pixel_values = processor(images=images, return_tensors="pt").pixel_values.to(model.device, model.dtype)
        ids = model.generate(pixel_values, max_length=MAX_LENGTH, **gen)
        tokenizer.batch_decode(ids, skip_special_tokens=True)
        out.extend(_strip(row) for row in ids.tolist())
    return out


def _strip(ids: list[int]) -> list[int]:
    """Token ids up to and including the first end token after the start (padding removed)."""
    for i, t in enumerate(ids[1:], start=1):
        if t == END:
            return ids[: i + 1]
    return ids


def _share(a: list, b: list) -> float:
    return sum(_strip(x) == _strip(y) for x, y in zip(a, b, strict=True)) / len(a)


def vit_encoder_gflop(config: Any) -> float:
    """Forward FLOPs (2 x multiply-adds) of a ViT encoder for one image, from its config.

    Patch embedding, then per layer: QKV and output projections (4 d^2 per token), the MLP
    (2 d m per token) and the two attention matmuls (2 T^2 d); norms and softmax are ignored.
    """
    d, m, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    patches = (config.image_size // config.patch_size) ** 2
    t = patches + 1  # + [CLS]
    macs = patches * d * config.num_channels * config.patch_size**2
    macs += layers * (t * (4 * d * d + 2 * d * m) + 2 * t * t * d)
    return 2 * macs / 1e9


TAGS = {"float32": "fp32", "bfloat16": "bf16", "int8": "int8"}


def _project_rows(res: AreaResult, ids: dict[str, list], folder: Path, paths: list[Path],
                  device: torch.device, dtype: str, m: int, greedy_bs: int, beam_bs: int,
                  refs: tuple[str, str], quick: bool, full: int) -> None:
    """``Captioner`` rows for one dtype: batched greedy and beams, encoder alone, latency.

    Float32 and bfloat16 rows are compared with batched ``generate``; int8 rows with the float32
    ``Captioner`` (the issue's "x fp32" figure).
    """
    import time

    import core
    from core.captioning.fast_decode import encode

    tag = TAGS[dtype]
    start = time.perf_counter()
    cap = core.Captioner(str(folder), device=device, dtype=dtype)
    captured: list = []
    decode = cap.decode
    cap.decode = lambda t, _d=decode, _c=captured: (_c.extend(_strip(r) for r in t.tolist()), _d(t))[1]
    for beams, bs, ref in ((1, greedy_bs, refs[0]), (4, beam_bs, refs[1])):
        cap.caption_batch(paths[:bs], batch_size=bs, num_beams=beams)  # warm-up at the timed shapes
        if dtype == "int8" and beams == 1:
            res.settings["int8 kernel"] = f"{cap.int8_kernel} (core.devices.int8_kernel, for this CPU)"
            res.extra["int8 load + quantise + first batch (eager int8)"] = f"{time.perf_counter() - start:.1f} s"
            if cap.int8_kernel == "torchao":
                cap.wait_compiled()  # the timed rows run on the compiled encoder
                res.extra["int8 compiled encoder in use (built in the background)"] = (
                    f"{time.perf_counter() - start:.1f} s")
                cap.caption_batch(paths[:bs], batch_size=bs, num_beams=beams)
        captured.clear()
        sec = best_seconds(lambda c=cap, b=beams, s=bs, p=paths[:m]: c.caption_batch(p, batch_size=s, num_beams=b),
                           device, warmup=False, repeat=1 if device.type == "cuda" else 2)
        name = f"Captioner {tag} {'greedy' if beams == 1 else '4 beams'} b{bs}"
        ids[name] = list(captured)[-m:]  # the last timed run (best_seconds may repeat)
        vs = name.replace("int8", "fp32") if dtype == "int8" else ref
        res.add(Row(name, "project", m / sec, notes="JPEG files -> captions"), vs=vs)
    with torch.inference_mode():
        pix = cap.preprocess([Image.open(p).convert("RGB") for p in paths[: min(greedy_bs, m)]])
        sec = best_seconds(lambda c=cap, x=pix: encode(c.model, x), device, repeat=2)
    name = f"encoder only {tag} b{pix.shape[0]}"
    res.add(Row(name, "floor", pix.shape[0] / sec, notes="upper bound for any decoder"),
            vs=name.replace("int8", "fp32") if dtype == "int8" else refs[0])
    if dtype != "bfloat16" or m == full:  # bf16 latency only where bf16 is not emulated
        for beams in (1, 4):
            ms = median_ms(lambda c=cap, b=beams: c.caption(paths[0], num_beams=b), device, 3 if quick else 5)
            res.add(Row(f"single image {tag} {'greedy' if beams == 1 else '4 beams'}", "project", ms,
                        unit="ms", notes="latency, file -> caption"))


def run(device: torch.device, quick: bool, coco_dir: Path | None, bf16_native: bool,
        peak_gflops: float | None = None) -> AreaResult:
    from transformers import AutoTokenizer, VisionEncoderDecoderModel, ViTImageProcessor

    gpu = device.type == "cuda"
    # A GPU needs large batches (and many images) before its rate means anything.
    n = (256 if quick else 512) if gpu else (8 if quick else 32)
    # Without bf16 hardware the CPU emulates it (several times slower than float32): fewer images.
    n_bf16 = n if gpu or bf16_native else (4 if quick else 8)
    greedy_bs, beam_bs = (256, 64) if gpu else (16, 8)
    gen_greedy, gen_beams = f"generate fp32 greedy b{greedy_bs}", f"generate fp32 4 beams b{beam_bs}"
    tmp = Path(tempfile.mkdtemp(prefix="bench-caption-"))
    folder = build_model_dir(tmp / "model")
    paths = jpeg_files(n, tmp, coco_dir)
    res = AreaResult("caption", {
        "model": "vit-gpt2-coco-en architecture, random init (untied head)", "images": n,
        "max_length": MAX_LENGTH, "greedy_batch": greedy_bs, "beam_batch": beam_bs,
        "beams": 4, "bf16_images": n_bf16, "input": "JPEG files" + (" (Tiny COCO val2017)" if coco_dir else " (generated)"),
    })
    model = VisionEncoderDecoderModel.from_pretrained(folder).to(device).eval()
    processor = ViTImageProcessor.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids: dict[str, list] = {}

    def timed(name: str, kind: str, fn: Any, items: int, vs: str | None = None, notes: str = "",
              warm: Any = None) -> None:
        if warm is not None:  # one chunk at the timed shapes first (kernel choice, allocator)
            warm()
            sync(device)
        holder: dict[str, Any] = {}
        sec = best_seconds(lambda: holder.update(out=fn()), device, warmup=False)
        ids[name] = holder["out"]
        res.add(Row(name, kind, items / sec, notes=notes), vs=vs)

    card_n = min(16, max(2, n // 4))  # the card's loop is slow; its rate does not depend on n
    with torch.inference_mode():
        _card_loop(model, processor, tokenizer, paths[:1], num_beams=1)  # warm-up
        timed("card loop fp32 4 beams", "reference", lambda: _card_loop(model, processor, tokenizer, paths[:card_n], num_beams=4), card_n)
        timed("card loop fp32 greedy", "reference", lambda: _card_loop(model, processor, tokenizer, paths[:card_n], num_beams=1), card_n)
        for bs, name, kw in ((greedy_bs, gen_greedy, {"num_beams": 1}),
                             (beam_bs, gen_beams, {"num_beams": 4, "early_stopping": True})):
            timed(name, "reference", lambda s=bs, k=kw: _batched_generate(model, processor, tokenizer, paths, s, **k), n,
                  warm=lambda s=bs, k=kw: _batched_generate(model, processor, tokenizer, paths[:s], s, **k))
        model.to(torch.bfloat16)
        timed(f"generate bf16 greedy b{greedy_bs}", "reference", lambda: _batched_generate(model, processor, tokenizer, paths[:n_bf16], greedy_bs, num_beams=1), n_bf16,
              warm=lambda: _batched_generate(model, processor, tokenizer, paths[:greedy_bs], greedy_bs, num_beams=1))
    model.to("meta")  # free the reference model before the project runs

    dtypes = ["float32", "bfloat16"] + (["int8"] if device.type == "cpu" else [])
    for dtype in dtypes:
        _project_rows(res, ids, folder, paths, device, dtype, n if dtype != "bfloat16" else n_bf16,
                      greedy_bs, beam_bs, (gen_greedy, gen_beams), quick, full=n)
    if peak_gflops:
        gflop = vit_encoder_gflop(VisionEncoderDecoderModel.config_class.from_pretrained(folder).encoder)
        res.extra["fp32 ceiling (encoder FLOPs / measured fp32 matmul peak)"] = (
            f"{gflop:.1f} GFLOP per image at {peak_gflops:.0f} GFLOP/s -> at most "
            f"{peak_gflops / gflop:.2f} img/s for the encoder alone, before any decoding")
    greedy32, beams32 = f"Captioner fp32 greedy b{greedy_bs}", f"Captioner fp32 4 beams b{beam_bs}"
    lengths = [len(r) - 1 for r in ids[greedy32]]
    res.extra["mean new tokens per greedy caption"] = f"{sum(lengths) / len(lengths):.1f}"
    res.extra["identical captions, Captioner fp32 vs generate fp32 (greedy, beams)"] = (
        f"{_share(ids[greedy32], ids[gen_greedy]):.0%}, {_share(ids[beams32], ids[gen_beams]):.0%}")
    res.extra["identical captions, bf16 vs fp32 (greedy, beams)"] = (
        f"{_share(ids[greedy32.replace('fp32', 'bf16')], ids[greedy32][:n_bf16]):.0%}, "
        f"{_share(ids[beams32.replace('fp32', 'bf16')], ids[beams32][:n_bf16]):.0%} "
        f"of {n_bf16} images")
    if f"Captioner int8 greedy b{greedy_bs}" in ids:
        from bench.int8_first_use import first_use

        res.extra.update(first_use(folder, paths[0]))
        res.extra["identical captions, int8 vs fp32 Captioner, random weights (greedy, beams)"] = (
            f"{_share(ids[greedy32.replace('fp32', 'int8')], ids[greedy32]):.0%}, "
            f"{_share(ids[beams32.replace('fp32', 'int8')], ids[beams32]):.0%} of {n} images")
        if coco_dir is not None:
            from bench.int8_agreement import agreement

            res.extra.update(agreement(coco_dir, 12 if quick else 50))
    res.extra["identical captions, card loop vs batched generate (greedy)"] = (
        f"{_share(ids['card loop fp32 greedy'], ids[gen_greedy][:card_n]):.0%}")
    return res
