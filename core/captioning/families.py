"""The captioning families: one small entry per architecture, chosen from ``config.json``'s
``model_type`` (never from the hub id).

An entry says how the family loads (its transformers class), how a prompt becomes model input,
which side a batch is padded on, what part of the output is the caption, and its default
generation settings. :mod:`core.captioning.prompted` runs every family but ViT-GPT2 from these
entries; ViT-GPT2 keeps its own loader and fast decoder (:mod:`core.captioning.loading`).

Torch-free: ``img2text models`` prints this table without importing torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from core.captioning.generation import GenerationOptions
from core.errors import ConfigError, ModelUnavailableError

# How a prompt becomes model input:
#   none   - the family takes no prompt (ViT-GPT2)
#   prefix - the prompt is the start of the caption, tokenised as text (BLIP, GIT)
#   task   - the prompt is one of a fixed set of task tokens (Florence-2)
#   plain  - the processor takes the prompt text beside the image (BLIP-2, PaliGemma)
#   chat   - one user turn [image, text] through the processor's chat template (chat VLMs)
PromptStyle = Literal["none", "prefix", "task", "plain", "chat"]
# What of the generated sequence is the caption:
#   all       - every decoded token (encoder-decoder output, or BLIP/GIT whose caption keeps the prefix)
#   generated - only the tokens after the input (decoder-only models that echo their prompt)
OutputCut = Literal["all", "generated"]

CHAT_PROMPT = "Describe this image in one sentence."
FLORENCE_TASKS = {"<CAPTION>": 30, "<DETAILED_CAPTION>": 80, "<MORE_DETAILED_CAPTION>": 200, "<OCR>": 200}


@dataclass(frozen=True)
class Checkpoint:
    """A suggested hub checkpoint of a family (shown by ``img2text models`` and the apps)."""

    id: str
    parameters: str  # rounded, as the model card gives it
    licence: str


@dataclass(frozen=True)
class Family:
    """How one architecture captions."""

    name: str  # what the user sees ("blip", "florence2", ...)
    model_types: tuple[str, ...]  # config.json model_type values of this family
    model_class: str  # the transformers class that loads it
    prompt_style: PromptStyle
    output_cut: OutputCut
    default_prompt: str | None = None  # None = unconditional
    prompts: Mapping[str, int] | None = None  # the only prompts allowed -> their max_new_tokens
    padding_side: Literal["left", "right"] = "left"  # decoder-only models pad on the left
    max_new_tokens: int = 30  # default caption budget (counted after the prompt, never over it)
    int8: bool = False  # dtype int8 works (only ViT-GPT2's torchao path today)
    suggested: tuple[Checkpoint, ...] = field(default_factory=tuple)

    @property
    def takes_prompt(self) -> bool:
        return self.prompt_style != "none"

    def resolve_prompt(self, prompt: str | None) -> str | None:
        """The prompt a caption is made with: the given one or the family's default.

        Raises:
            ConfigError: a prompt for a family that takes none, or not one of the family's tasks.
        """
        if prompt is None:
            return self.default_prompt
        if not self.takes_prompt:
            raise ConfigError(f"model family {self.name!r} takes no prompt (got {prompt!r}); drop "
                              "--prompt, or pick a family that takes one (see `img2text models`)")
        if self.prompts is not None and prompt not in self.prompts:
            raise ConfigError(f"{self.name} takes one of the tasks {', '.join(self.prompts)} as its "
                              f"prompt, not {prompt!r}")
        return prompt

    def generation_defaults(self, prompt: str | None) -> dict[str, Any]:
        """This family's default ``**generation`` keywords for ``prompt`` (greedy, a token budget)."""
        if self.name == VIT_GPT2:
            return {}  # the model card's, as GenerationOptions' own defaults
        budget = self.prompts.get(prompt or "", self.max_new_tokens) if self.prompts else self.max_new_tokens
        return {"num_beams": 1, "max_new_tokens": budget}

    def options_kwargs(self, generation: Mapping[str, Any]) -> dict[str, Any]:
        """The caller's ``**generation`` over this family's defaults, with the prompt resolved.

        A caller's ``max_length`` replaces the family's ``max_new_tokens`` (one length limit).
        """
        given = {k: v for k, v in generation.items() if v is not None or k == "seed"}
        prompt = self.resolve_prompt(given.pop("prompt", None))
        defaults = self.generation_defaults(prompt)
        if "max_length" in given and "max_new_tokens" not in given:
            defaults.pop("max_new_tokens", None)
        return {**defaults, **given, "prompt": prompt}

    def options(self, generation: Mapping[str, Any]) -> GenerationOptions:
        """What a caption of this family is made with for the caller's ``**generation``."""
        return GenerationOptions.from_kwargs(**self.options_kwargs(generation))


VIT_GPT2 = "vit-gpt2"

FAMILIES: tuple[Family, ...] = (
    Family(VIT_GPT2, ("vision-encoder-decoder",), "VisionEncoderDecoderModel", "none", "all",
           padding_side="right", max_new_tokens=15, int8=True,
           suggested=(Checkpoint("ydshieh/vit-gpt2-coco-en", "240M", "apache-2.0"),)),
    Family("blip", ("blip",), "BlipForConditionalGeneration", "prefix", "all", padding_side="right",
           suggested=(Checkpoint("Salesforce/blip-image-captioning-base", "247M", "bsd-3-clause"),
                      Checkpoint("Salesforce/blip-image-captioning-large", "470M", "bsd-3-clause"))),
    Family("git", ("git",), "GitForCausalLM", "prefix", "all",
           suggested=(Checkpoint("microsoft/git-base-coco", "177M", "mit"),
                      Checkpoint("microsoft/git-large-coco", "394M", "mit"))),
    Family("florence2", ("florence2",), "Florence2ForConditionalGeneration", "task", "all",
           default_prompt="<CAPTION>", prompts=FLORENCE_TASKS, padding_side="right",
           suggested=(Checkpoint("florence-community/Florence-2-base", "230M", "mit"),
                      Checkpoint("florence-community/Florence-2-large", "770M", "mit"))),
    Family("blip-2", ("blip-2",), "Blip2ForConditionalGeneration", "plain", "generated",
           suggested=(Checkpoint("Salesforce/blip2-opt-2.7b", "3.9B", "mit"),)),
    Family("paligemma", ("paligemma",), "PaliGemmaForConditionalGeneration", "plain", "generated",
           default_prompt="caption en",
           suggested=(Checkpoint("google/paligemma2-3b-pt-224", "3B", "gemma"),)),
    Family("smolvlm", ("smolvlm", "idefics3"), "AutoModelForImageTextToText", "chat", "generated",
           default_prompt=CHAT_PROMPT,
           suggested=(Checkpoint("HuggingFaceTB/SmolVLM-256M-Instruct", "256M", "apache-2.0"),
                      Checkpoint("HuggingFaceTB/SmolVLM-500M-Instruct", "507M", "apache-2.0"))),
    Family("qwen2-vl", ("qwen2_vl", "qwen2_5_vl"), "AutoModelForImageTextToText", "chat", "generated",
           default_prompt=CHAT_PROMPT,
           suggested=(Checkpoint("Qwen/Qwen2-VL-2B-Instruct", "2.2B", "apache-2.0"),
                      Checkpoint("Qwen/Qwen2.5-VL-3B-Instruct", "3.8B", "qwen-research"))),
    Family("llava", ("llava",), "AutoModelForImageTextToText", "chat", "generated",
           default_prompt=CHAT_PROMPT,
           suggested=(Checkpoint("llava-hf/llava-1.5-7b-hf", "7.1B", "llama2"),
                      Checkpoint("fancyfeast/llama-joycaption-beta-one-hf-llava", "8.5B", "llama3.1"))),
    Family("gemma3", ("gemma3",), "AutoModelForImageTextToText", "chat", "generated",
           default_prompt=CHAT_PROMPT,
           suggested=(Checkpoint("google/gemma-3-4b-it", "4.3B", "gemma"),)),
)
SUPPORTED_MODEL_TYPES = {t: f for f in FAMILIES for t in f.model_types}
FAMILY_NAMES = {f.name: f for f in FAMILIES}

# Checkpoints whose config needs the repository's own code, and the native conversion to use instead.
NATIVE_ALTERNATIVES = {"florence2": "florence-community/Florence-2-base (or -large, -base-ft, -large-ft)"}


def family_for_config(config: Mapping[str, Any], *, source: str, trust_remote_code: bool = False) -> Family:
    """The family of a model from its ``config.json`` contents.

    Args:
        config: the parsed ``config.json``.
        source: the model's id or folder (for messages).
        trust_remote_code: the user's opt-in to run the repository's own model code.

    Raises:
        ModelUnavailableError: the model needs its own code without the opt-in, or its
            ``model_type`` is not a supported family.
    """
    model_type = str(config.get("model_type", ""))
    remote = "auto_map" in config
    if remote and trust_remote_code:
        return remote_family(model_type)
    if remote:
        native = NATIVE_ALTERNATIVES.get(model_type)
        instead = f" Use the native conversion {native} instead," if native else ""
        raise ModelUnavailableError(
            f"{source}: this checkpoint ships its own model code (config.json has auto_map), which "
            f"this project does not run by default.{instead} or opt in to running the repository's "
            "code with trust_remote_code=True (CLI: --trust-remote-code) if you trust its author."
        )
    family = SUPPORTED_MODEL_TYPES.get(model_type)
    if family is None:
        raise ModelUnavailableError(
            f"{source}: model_type {model_type!r} is not a supported captioning family. Supported: "
            + ", ".join(f"{f.name} ({'/'.join(f.model_types)})" for f in FAMILIES)
            + ". See `img2text models` for suggested checkpoints."
        )
    return family


def remote_family(model_type: str) -> Family:
    """A checkpoint run through its own code (opt-in): AutoModelForCausalLM + AutoProcessor, the
    prompt beside the image, only the generated tokens kept."""
    return Family(f"remote:{model_type or 'unknown'}", (model_type,), "AutoModelForCausalLM", "plain",
                  "generated", default_prompt="<CAPTION>" if model_type == "florence2" else None)


def model_family(model: str | None = None, *, trust_remote_code: bool = False) -> Family:
    """The family of ``model`` (hub id, ``id@revision``, folder or ``None`` for the default) from
    its ``config.json`` alone, without loading weights (the hub's cache first, as for loading).

    Raises:
        ModelUnavailableError: the config cannot be read, or the family is not supported.
    """
    from core.captioning.loading import read_model_config, resolve_model_spec

    spec = resolve_model_spec(model)
    return family_for_config(read_model_config(spec), source=str(spec), trust_remote_code=trust_remote_code)
