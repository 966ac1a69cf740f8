"""Generation settings: the model card's defaults, validated overrides, and caption cleaning."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from core.errors import ConfigError

# Keys a caller may pass as ``**generation`` to ``core.caption`` and friends.
GENERATION_KEYS = (
    "num_beams",
    "max_length",
    "max_new_tokens",
    "do_sample",
    "temperature",
    "top_p",
    "top_k",
    "no_repeat_ngram_size",
    "repetition_penalty",
    "seed",
    "prompt",
)


class UnknownOptionError(ConfigError, TypeError):
    """A ``**generation`` keyword that is not a generation option (a TypeError, as for any call)."""


@dataclass(frozen=True)
class GenerationOptions:
    """How captions are decoded. Defaults equal the ``ydshieh/vit-gpt2-coco-en`` model card."""

    # metadata["help"] is also the `img2text caption/eval --flag` help (core/cli/config_options.py).
    num_beams: int = field(default=4, metadata={
        "help": "beam search width; 1 = greedy (or plain sampling with --sample)"})
    max_length: int | None = field(default=16, metadata={
        "help": "total decoder length incl. the start token (model card)"})
    max_new_tokens: int | None = field(default=None, metadata={
        "help": "tokens to generate; if set, replaces --max-length"})
    do_sample: bool = field(default=False, metadata={"help": "sample instead of searching"})
    temperature: float = field(default=1.0, metadata={
        "help": "sampling temperature (only with --sample)"})
    top_p: float = field(default=1.0, metadata={
        "help": "nucleus sampling mass (only with --sample)"})
    top_k: int = field(default=0, metadata={
        "help": "keep the k most likely tokens; 0 = no top-k filter (only with --sample)"})
    no_repeat_ngram_size: int = field(default=0, metadata={
        "help": "forbid repeating n-grams of this size (0 = off; try 3 against repeated phrases)"})
    repetition_penalty: float = field(default=1.0, metadata={
        "help": "values > 1 discourage repeated tokens"})
    seed: int | None = field(default=None, metadata={"help": "seed for reproducible sampling"})
    prompt: str | None = field(default=None, metadata={
        "help": "text the model is asked with (a Florence-2 task such as <DETAILED_CAPTION>, a "
        "question for a chat model, a caption prefix for BLIP/GIT); none = the family's default, "
        "see `img2text models`"})

    def __post_init__(self) -> None:
        if self.num_beams < 1:
            raise ConfigError(f"num_beams must be >= 1, got {self.num_beams}")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.max_new_tokens is None and (self.max_length is None or self.max_length < 2):
            raise ConfigError(f"max_length must be >= 2, got {self.max_length}")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ConfigError(f"top_k must be >= 0, got {self.top_k}")
        if self.no_repeat_ngram_size < 0:
            raise ConfigError(f"no_repeat_ngram_size must be >= 0, got {self.no_repeat_ngram_size}")
        if self.repetition_penalty <= 0:
            raise ConfigError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")
        if self.prompt is not None and (not isinstance(self.prompt, str) or not self.prompt.strip()):
            raise ConfigError(f"prompt must be non-empty text, got {self.prompt!r}; leave it unset "
                              "for the model family's default")

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> GenerationOptions:
        """Build options from ``**generation`` keywords, rejecting unknown names."""
        unknown = sorted(set(kwargs) - set(GENERATION_KEYS))
        if unknown:
            raise UnknownOptionError(
                f"unknown generation option(s): {', '.join(unknown)}; "
                f"known: {', '.join(GENERATION_KEYS)}"
            )
        clean = {k: v for k, v in kwargs.items() if v is not None or k in ("seed", "prompt")}
        if "max_new_tokens" in clean and "max_length" not in clean:
            clean["max_length"] = None
        return cls(**clean)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_hf_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``model.generate`` (the seed and prompt are handled by the caller)."""
        out: dict[str, Any] = {"num_beams": self.num_beams, "do_sample": self.do_sample}
        if self.max_new_tokens is not None:
            out["max_new_tokens"] = self.max_new_tokens
        else:
            out["max_length"] = self.max_length
        if self.do_sample:
            out.update(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k)
        if self.no_repeat_ngram_size:
            out["no_repeat_ngram_size"] = self.no_repeat_ngram_size
        if self.repetition_penalty != 1.0:
            out["repetition_penalty"] = self.repetition_penalty
        if self.num_beams > 1 and not self.do_sample:
            out["early_stopping"] = True
        return out


OPTION_NAMES = tuple(f.name for f in fields(GenerationOptions))
_SPACES = re.compile(r"\s+")


def clean_caption(text: str) -> str:
    """Collapse whitespace and strip; special tokens are already skipped by the decoder."""
    return _SPACES.sub(" ", text).strip()


# The decoding choices every front end offers (UI label -> mode).
DECODING_MODES = {"Beam search": "beam", "Greedy": "greedy", "Sampling": "sample"}


def decoding_kwargs(
    mode: str,
    *,
    num_beams: int = GenerationOptions.num_beams,
    max_new_tokens: int | None = None,
    temperature: float = GenerationOptions.temperature,
    top_p: float = GenerationOptions.top_p,
    seed: int | None = None,
) -> dict[str, Any]:
    """A front end's decoding panel -> ``**generation`` keywords.

    Args:
        mode: ``"beam"``, ``"greedy"`` or ``"sample"`` (or a label of `DECODING_MODES`).
        num_beams: beam width, used in beam mode only.
        max_new_tokens: ``None`` keeps the model card's total length.
        temperature, top_p: used in sample mode only.
        seed: sampling seed; ``None`` or negative means unseeded.
    """
    mode = DECODING_MODES.get(mode, mode)
    if mode not in DECODING_MODES.values():
        raise ConfigError(f"unknown decoding mode {mode!r}; choose beam, greedy or sample")
    kwargs: dict[str, Any] = {}
    if max_new_tokens is not None:
        kwargs["max_new_tokens"] = int(max_new_tokens)
    if mode == "sample":
        kwargs.update(num_beams=1, do_sample=True, temperature=float(temperature), top_p=float(top_p))
        if seed is not None and int(seed) >= 0:
            kwargs["seed"] = int(seed)
    else:
        kwargs.update(num_beams=1 if mode == "greedy" else int(num_beams), do_sample=False)
    return kwargs
