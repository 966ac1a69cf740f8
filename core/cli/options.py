"""Argument groups shared by several sub-commands (model, device, generation)."""

from __future__ import annotations

import argparse
from typing import Any

from core.captioning.generation import GenerationOptions, decoding_kwargs
from core.captioning.loading import DEFAULT_MODEL, MODEL_ENV
from core.devices import DEVICE_HELP, DTYPE_CHOICES

_DEFAULTS = GenerationOptions()


def add_model_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", default=None,
                       help=f"hub id (id@revision pins a revision) or local save_pretrained folder; "
                       f"default: ${MODEL_ENV} or {DEFAULT_MODEL}")
    group.add_argument("--device", default="auto", help=DEVICE_HELP)
    group.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES,
                       help="auto = bfloat16 on a capable GPU, float32 on CPU")


def add_generation_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("generation (defaults follow the model card)")
    group.add_argument("--num-beams", type=int, default=_DEFAULTS.num_beams, help="beam search width")
    group.add_argument("--greedy", action="store_true", help="greedy decoding (same as --num-beams 1)")
    group.add_argument("--max-new-tokens", type=int, default=None,
                       help=f"tokens to generate; default: total length {_DEFAULTS.max_length} as in the model card")
    group.add_argument("--sample", action="store_true", help="sample instead of searching")
    group.add_argument("--temperature", type=float, default=_DEFAULTS.temperature, help="sampling temperature")
    group.add_argument("--top-p", type=float, default=_DEFAULTS.top_p, help="nucleus sampling mass")
    group.add_argument("--seed", type=int, default=None, help="seed for reproducible sampling")
    group.add_argument("--no-repeat-ngram-size", type=int, default=_DEFAULTS.no_repeat_ngram_size,
                       help="forbid repeating n-grams of this size (0 = off; try 3 against repeated phrases)")
    group.add_argument("--repetition-penalty", type=float, default=_DEFAULTS.repetition_penalty,
                       help="values > 1 discourage repeated tokens")


def generation_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """CLI flags -> ``**generation`` keywords of ``core.caption``."""
    mode = "sample" if args.sample else "greedy" if args.greedy else "beam"
    kwargs = decoding_kwargs(mode, num_beams=args.num_beams, max_new_tokens=args.max_new_tokens,
                             temperature=args.temperature, top_p=args.top_p, seed=args.seed)
    kwargs.update(no_repeat_ngram_size=args.no_repeat_ngram_size,
                  repetition_penalty=args.repetition_penalty)
    GenerationOptions.from_kwargs(**kwargs)  # validate before any model is loaded
    return kwargs


def quiet_transformers() -> None:
    """The CLI shows its own progress; silence library load reports and warnings."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
