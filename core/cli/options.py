"""Options several sub-commands share, declared once: device, batch size, data/split, checkpoint,
quiet, the captioning model and the generation options (generated from ``GenerationOptions``).

Torch-free, so every ``--help`` prints without importing torch or transformers. The few library
constants shown in help live in torch-importing modules; they are mirrored here and
``tests/core/cli/test_help_imports.py`` asserts each mirror equals the library's value.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from core import ConfigError
from core.captioning import GenerationOptions
from core.cli.config_options import add_config_options, config_overrides

# Mirrors of library constants (checked equal by tests/core/cli/test_help_imports.py).
DEVICE_HELP = "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps"  # core.devices
DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16", "int8")  # core.devices.CAPTION_DTYPE_CHOICES
DEFAULT_MODEL = "ydshieh/vit-gpt2-coco-en"  # core.captioning.loading
MODEL_ENV = "IMG2TEXT_MODEL"  # core.captioning.loading
CAPTION_BATCH_SIZE = 16  # core.captioning.captioner.DEFAULT_BATCH_SIZE
EMBED_BATCH_SIZE = 64  # core.search.embed.DEFAULT_BATCH_SIZE
ON_ERROR_CHOICES = ("skip", "raise")  # core.search.embed

# Decoding flags users already know, kept next to the generated --do-sample etc.
GENERATION_ALIASES = {"do_sample": ["--sample"]}


def add_device(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)


def add_batch_size(parser: argparse.ArgumentParser | argparse._ArgumentGroup, default: int) -> None:
    parser.add_argument("--batch-size", type=int, default=default, metavar="N",
                        help="images per forward pass")


def add_data(parser: argparse.ArgumentParser, *, split: str, help: str = "data folder",
             split_help: str = "split folder for annotated layouts", required: bool = True,
             group: argparse._MutuallyExclusiveGroup | None = None) -> None:
    """``--data DIR`` and ``--split S`` (the split's default differs per command).

    Args:
        parser: the sub-command's parser (``--split`` always goes here).
        split: the default split.
        help: help of ``--data``.
        split_help: help of ``--split``.
        required: whether ``--data`` must be given (ignored with ``group``: the group decides).
        group: a mutually exclusive group to put ``--data`` in, e.g. ``--data`` or ``--captions``.
    """
    if group is not None:
        group.add_argument("--data", type=Path, metavar="DIR", help=help)
    else:
        parser.add_argument("--data", required=required, type=Path, metavar="DIR", help=help)
    parser.add_argument("--split", default=split, help=split_help)


def add_checkpoint(parser: argparse.ArgumentParser, *, required: bool = True,
                   help: str = "SSL run folder or .safetensors file") -> None:
    parser.add_argument("--checkpoint", required=required, type=Path, metavar="RUN_DIR", help=help)


ENCODER_HELP = ("pretrained encoder instead of an SSL run: a CLIP, SigLIP, SigLIP 2 or DINOv2 hub id "
                "(id@revision pins a commit) or save_pretrained folder; see `img2text models`")


def add_encoder_choice(parser: argparse.ArgumentParser, *, required: bool = True,
                       help: str = "SSL run folder or .safetensors file") -> None:
    """``--checkpoint RUN_DIR`` or ``--encoder ID``: one of the two (``required``) or neither."""
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--checkpoint", type=Path, metavar="RUN_DIR", help=help)
    group.add_argument("--encoder", default=None, metavar="ID[@REV]|FOLDER", help=ENCODER_HELP)


def add_quiet(parser: argparse.ArgumentParser | argparse._ArgumentGroup,
              help: str = "no progress bar or summary") -> None:
    parser.add_argument("--quiet", "-q", action="store_true", help=help)


def add_model_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", default=None,
                       help=f"hub id (id@revision pins a revision) or local save_pretrained folder; "
                       f"default: ${MODEL_ENV} or {DEFAULT_MODEL}")
    add_device(group)
    group.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES,
                       help="auto = bfloat16 on a capable GPU, float32 on CPU; int8 (CPU, opt-in, "
                       "ViT-GPT2 only) = int8 weights through torchao: faster, captions may differ "
                       "from float32")
    group.add_argument("--trust-remote-code", action="store_true",
                       help="run a checkpoint's own model code (config.json with auto_map); only for "
                       "authors you trust; prefer a natively supported checkpoint (img2text models)")


def add_generation_args(parser: argparse.ArgumentParser) -> None:
    """One flag per ``GenerationOptions`` field, plus ``--greedy`` (= ``--num-beams 1``)."""
    group = parser.add_argument_group("generation (defaults follow the model card)")
    group.add_argument("--greedy", action="store_true", help="greedy decoding (same as --num-beams 1)")
    add_config_options(group, GenerationOptions, aliases=GENERATION_ALIASES)


def generation_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """CLI flags -> ``**generation`` keywords of ``core.caption`` (only what the user set).

    ``--greedy`` means one beam; ``--sample`` without ``--num-beams`` samples plainly (one beam).

    Raises:
        ConfigError: contradicting or invalid options (checked before any model is loaded).
    """
    kwargs = config_overrides(GenerationOptions, args)
    if args.greedy:
        if kwargs.get("do_sample") or kwargs.get("num_beams", 1) != 1:
            raise ConfigError("--greedy means one beam without sampling; drop --num-beams/--sample")
        kwargs["num_beams"] = 1
    if kwargs.get("do_sample") and "num_beams" not in kwargs:
        kwargs["num_beams"] = 1
    GenerationOptions.from_kwargs(**kwargs)  # validate before any model is loaded
    return kwargs


def quiet_transformers() -> None:
    """The CLI shows its own progress; silence library load reports and warnings."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
