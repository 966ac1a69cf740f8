"""Caption speed of the prompted families at a real checkpoint's size, random weights.

Per family, in the same run: the peer tools' loop (one image at a time through the processor and
``model.generate``, as the model cards show), batched ``model.generate`` of the same model and
inputs, and the project's ``Captioner.caption_batch``; images/s, plus one image's latency. Greedy,
``max_new_tokens`` fixed (random weights never stop early, so every path makes the same number
of tokens). Sizes follow the model cards' configs (BLIP base, GIT base, Florence-2 base,
SmolVLM-256M); tokenizers are small offline ones, the vocabulary size of the model is the real one.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from bench.common import AreaResult, Row, best_seconds, sync

MAX_NEW = 20


def _bert(n_words: int = 200, extra: tuple[str, ...] = ()) -> Any:
    from transformers import BertTokenizer

    words = [f"w{i}" for i in range(n_words)]
    return BertTokenizer(vocab={t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
                                                             *extra, *words])})


def build_blip_base(out: Path) -> None:
    from transformers import (
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    tok = _bert(extra=("[DEC]",))
    tok.add_special_tokens({"bos_token": "[DEC]"})
    config = BlipConfig(text_config={"bos_token_id": 5, "sep_token_id": 3}, vision_config={})  # base = defaults
    BlipForConditionalGeneration(config).save_pretrained(out)
    BlipProcessor(image_processor=BlipImageProcessor(), tokenizer=tok).save_pretrained(out)


def build_git_base(out: Path) -> None:
    from transformers import CLIPImageProcessor, GitConfig, GitForCausalLM, GitProcessor

    GitForCausalLM(GitConfig(bos_token_id=2, eos_token_id=3)).save_pretrained(out)  # git-base = defaults
    GitProcessor(image_processor=CLIPImageProcessor(), tokenizer=_bert()).save_pretrained(out)


def build_florence2_base(out: Path) -> None:
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import (
        BartTokenizer,
        CLIPImageProcessor,
        Florence2Config,
        Florence2ForConditionalGeneration,
        Florence2Processor,
    )

    symbols = ["<s>", "<pad>", "</s>", "<unk>", "<mask>", "<image>", *sorted(ByteLevel.alphabet())]
    tok = BartTokenizer(vocab={t: i for i, t in enumerate(symbols)}, merges=[],
                        extra_special_tokens={"image_token": "<image>"})
    text = dict(model_type="bart", vocab_size=51289, d_model=768, encoder_layers=6, decoder_layers=6,
                encoder_attention_heads=12, decoder_attention_heads=12, encoder_ffn_dim=3072,
                decoder_ffn_dim=3072, max_position_embeddings=1024, forced_bos_token_id=None,
                forced_eos_token_id=None)
    config = Florence2Config(text_config=text, vision_config={"projection_dim": 768}, image_token_id=5)
    Florence2ForConditionalGeneration(config).save_pretrained(out)
    images = CLIPImageProcessor(size={"height": 768, "width": 768}, do_center_crop=False, image_seq_length=577)
    Florence2Processor(image_processor=images, tokenizer=tok).save_pretrained(out)


def build_smolvlm_256m(out: Path) -> None:
    """SmolVLM-256M's sizes (SigLIP 93M + a 135M Llama); one 512 px tile per image (the card's
    processor also splits large images into up to 4x4 tiles: more tokens, not measured here)."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import (
        Qwen2Tokenizer,
        SmolVLMConfig,
        SmolVLMForConditionalGeneration,
        SmolVLMImageProcessor,
        SmolVLMProcessor,
        SmolVLMVideoProcessor,
    )

    specials = ["<|endoftext|>", "<image>", "<fake_token_around_image>", "<global-img>",
                "<end_of_utterance>", "<|im_start|>"]
    vocab = {t: i for i, t in enumerate([*specials, *sorted(ByteLevel.alphabet())])}
    tok = Qwen2Tokenizer(vocab=vocab, merges=[])
    tok.add_special_tokens({"additional_special_tokens": specials[1:]})
    vision = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                  image_size=512, patch_size=16)
    text = dict(model_type="llama", vocab_size=49280, hidden_size=576, intermediate_size=1536,
                num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                max_position_embeddings=8192, bos_token_id=0, eos_token_id=4, pad_token_id=0)
    config = SmolVLMConfig(vision_config=vision, text_config=text, scale_factor=4, image_token_id=1)
    SmolVLMForConditionalGeneration(config).save_pretrained(out)
    size = {"longest_edge": 512}
    template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}:{% for c in m['content'] %}"
                "{% if c['type'] == 'image' %}<image>{% else %}{{ c['text'] }}{% endif %}{% endfor %}"
                "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}")
    SmolVLMProcessor(image_processor=SmolVLMImageProcessor(do_image_splitting=False, size=size, max_image_size=size),
                     tokenizer=tok, video_processor=SmolVLMVideoProcessor(size=size, max_image_size=size),
                     image_seq_len=64, chat_template=template).save_pretrained(out)


BUILDERS: dict[str, tuple[Callable[[Path], None], str | None]] = {
    "BLIP base": (build_blip_base, None),
    "GIT base": (build_git_base, None),
    "Florence-2 base": (build_florence2_base, "<CAPTION>"),
    "SmolVLM-256M": (build_smolvlm_256m, "Describe this image in one sentence."),
}
CHAT = ("SmolVLM-256M",)


def _plain_inputs(processor: Any, images: list[Image.Image], prompt: str | None, chat: bool) -> Any:
    """The model card's inputs for a batch (a batch of one in the per-image loop)."""
    if prompt is None:
        return processor(images=images, return_tensors="pt")
    if chat:
        turn = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        text = processor.apply_chat_template(turn, add_generation_prompt=True, tokenize=False)
        processor.tokenizer.padding_side = "left"
        return processor(text=[text] * len(images), images=[[im] for im in images], padding=True,
                         return_tensors="pt")
    return processor(text=[prompt] * len(images), images=images, return_tensors="pt")


def _group(res: AreaResult, name: str, folder: Path, prompt: str | None, paths: list[Path],
           batch: int, device: torch.device) -> None:
    import transformers

    import core

    cap = core.Captioner(str(folder), device=str(device), dtype="float32")
    chat = name in CHAT
    model, processor = cap.model, cap.processor
    images = [Image.open(p).convert("RGB") for p in paths]
    # Every path makes exactly MAX_NEW tokens: the model's own generation config forbids stopping
    # earlier, for the references and the Captioner alike.
    model.generation_config.min_new_tokens = MAX_NEW
    gen = {"num_beams": 1, "do_sample": False, "max_new_tokens": MAX_NEW}
    transformers.logging.set_verbosity_error()

    def loop() -> None:
        for im in images[: max(2, len(images) // 4)]:
            model.generate(**_plain_inputs(processor, [im], prompt, chat).to(device), **gen)

    def batched() -> None:
        for i in range(0, len(images), batch):
            model.generate(**_plain_inputs(processor, images[i:i + batch], prompt, chat).to(device), **gen)

    def ours() -> None:
        cap.caption_batch(paths, batch_size=batch, prompt=prompt, max_new_tokens=MAX_NEW)

    with torch.inference_mode():
        n_loop = max(2, len(images) // 4)
        ref = f"{name}: per-image generate"
        res.add(Row(ref, "reference", n_loop / best_seconds(loop, device)))
        res.add(Row(f"{name}: batched generate b{batch}", "reference", len(images) / best_seconds(batched, device)), vs=ref)
        res.add(Row(f"{name}: Captioner.caption_batch b{batch}", "project", len(images) / best_seconds(ours, device)), vs=ref)
        start = time.perf_counter()
        cap.caption(paths[0], max_new_tokens=MAX_NEW)
        sync(device)
        res.add(Row(f"{name}: Captioner one image", "project", 1000 * (time.perf_counter() - start), unit="ms"))
    res.extra[f"{name} parameters"] = f"{sum(p.numel() for p in model.parameters()) / 1e6:.0f}M"


def run(device: torch.device, quick: bool, coco_dir: Path | None, only: tuple[str, ...] = ()) -> AreaResult:
    """One row group per family; ``only`` picks families by name (all when empty)."""
    from bench.caption import jpeg_files

    n, batch = (4, 4) if quick else (16, 8)
    tmp = Path(tempfile.mkdtemp(prefix="bench-families-"))
    paths = jpeg_files(n, tmp, coco_dir)
    res = AreaResult("caption families", {"images": n, "batch": batch, "max_new_tokens": MAX_NEW,
                                          "weights": "random, real checkpoint sizes", "greedy": True})
    for name, (build, prompt) in BUILDERS.items():
        if only and name not in only:
            continue
        folder = tmp / name.replace(" ", "-")
        build(folder)
        _group(res, name, folder, prompt, paths, batch, device)
    return res
