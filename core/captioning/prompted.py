"""Every family but ViT-GPT2: load it, build the batch's input from the images and the prompt,
generate, cut the caption out of the output. What differs per family comes from its
:class:`core.captioning.families.Family` entry.

A batch shares one prompt (one ``caption_batch`` call has one ``prompt``), so BLIP's prefix and
every chat turn have the same length in all rows; images of different sizes still give
different input lengths in the chat families (their image token counts differ), which the
processor pads on the family's side (left for decoder-only models) with an attention mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from core.captioning.families import Family
from core.captioning.generation import GenerationOptions, clean_caption
from core.errors import ConfigError, ModelUnavailableError


class PromptedModel:
    """One loaded model of a prompted family, with its processor.

    Shape:
        :meth:`generated_ids` returns one list of token ids per image: the caption's tokens only
        (padding removed; for BLIP/GIT the prefix prompt's tokens stay, as their captions keep it).
    """

    def __init__(self, family: Family, model: Any, processor: Any, device: torch.device,
                 dtype: torch.dtype) -> None:
        self.family, self.model, self.processor = family, model, processor
        self.device, self.dtype = device, dtype
        self.tokenizer = getattr(processor, "tokenizer", processor)
        if hasattr(self.tokenizer, "padding_side"):
            self.tokenizer.padding_side = family.padding_side
        if family.prompt_style == "chat" and not getattr(processor, "chat_template", None):
            raise ModelUnavailableError(
                f"{family.name} model: its processor has no chat template, so a prompt cannot be "
                "given as a chat turn; use a checkpoint whose folder has chat_template.jinja (or "
                "chat_template.json), or save the processor with one")

    # -- input --------------------------------------------------------------------------------

    def inputs(self, images: Sequence[Image.Image], prompt: str | None) -> dict[str, Any]:
        """The model's ``generate`` inputs for ``images`` captioned with ``prompt``."""
        style, n = self.family.prompt_style, len(images)
        if style == "prefix":
            batch = self.processor(images=list(images), return_tensors="pt")
            ids = self._prefix_ids(prompt)
            if ids is not None:
                batch["input_ids"] = torch.tensor([ids] * n)
                batch["attention_mask"] = torch.ones_like(batch["input_ids"])
        elif style == "chat":
            text = self.chat_text(prompt or "")
            batch = self.processor(text=[text] * n, images=[[im] for im in images],
                                   padding=True, return_tensors="pt")
        else:  # task, plain
            batch = self.processor(text=[prompt or ""] * n, images=list(images),
                                   padding=True, return_tensors="pt")
        return {k: (v.to(self.device, self.dtype) if torch.is_floating_point(v) else v.to(self.device))
                for k, v in batch.items() if isinstance(v, torch.Tensor)}

    def chat_text(self, prompt: str) -> str:
        """One user turn ``[image, text]`` through the chat template, ready for the answer."""
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def _prefix_ids(self, prompt: str | None) -> list[int] | None:
        """BLIP/GIT: the caption's first words as ids after the start token (None: unconditional).

        BLIP's ``generate`` replaces the first id by its BOS and drops the last (the [SEP] a
        tokenizer adds); GIT continues the ids as given (its model card: ``[CLS] + prompt``).
        """
        if prompt is None:
            return None
        words = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        start = self.tokenizer.cls_token_id
        if self.family.name == "blip":
            return [start, *words, self.tokenizer.sep_token_id]
        return [start, *words]

    # -- generation ---------------------------------------------------------------------------

    @torch.inference_mode()
    def generated_ids(self, images: Sequence[Image.Image], options: GenerationOptions) -> list[list[int]]:
        """Generate for one batch and cut each row down to its caption's tokens."""
        inputs = self.inputs(images, options.prompt)
        output = self.model.generate(**inputs, **options.to_hf_kwargs())
        return self.cut(output, inputs.get("input_ids"))

    def cut(self, output: torch.Tensor, input_ids: torch.Tensor | None) -> list[list[int]]:
        """Rows of ``output`` without the echoed input (``generated`` families), padding and the
        special tokens a finished row is filled up with in a batch (end and pad tokens)."""
        if (self.family.output_cut == "generated" and input_ids is not None
                and output.shape[1] >= input_ids.shape[1]
                and torch.equal(output[:, : input_ids.shape[1]], input_ids)):
            output = output[:, input_ids.shape[1]:]
        return [trim_row(row, self._pad_id(), set(self.tokenizer.all_special_ids)) for row in output.tolist()]

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        texts = self.tokenizer.batch_decode(list(ids), skip_special_tokens=True)
        return [clean_caption(t) for t in texts]

    def _pad_id(self) -> int | None:
        pad = getattr(self.model.generation_config, "pad_token_id", None)
        if pad is None:
            pad = getattr(self.tokenizer, "pad_token_id", None)
        return int(pad[0] if isinstance(pad, list) else pad) if pad is not None else None


def trim_row(row: list[int], pad: int | None, special: set[int]) -> list[int]:
    """One generated row without pad tokens and without the special tokens it ends with."""
    kept = [t for t in row if t != pad]
    while kept and kept[-1] in special:
        kept.pop()
    return kept


def load_prompted(spec_name: str, family: Family, *, device: torch.device, dtype: torch.dtype,
                  trust_remote_code: bool = False, **hub: Any) -> PromptedModel:
    """``from_pretrained`` of the family's model class and its processor, from one place."""
    import transformers

    if dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise ConfigError(f"{family.name} models run in float32, bfloat16 or float16, not {dtype}")
    remote = {"trust_remote_code": True} if trust_remote_code else {}
    model_class = getattr(transformers, family.model_class)
    model = model_class.from_pretrained(spec_name, dtype=dtype, weights_only=True, **remote, **hub)
    processor = transformers.AutoProcessor.from_pretrained(spec_name, **remote, **hub)
    model.to(device)
    model.eval()
    return PromptedModel(family, model, processor, device, dtype)
