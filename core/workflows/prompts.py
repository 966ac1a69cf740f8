"""The apps' model picker and prompt box: which models to offer, and what the prompt box shows
for a chosen model (hidden for families that take no prompt, Florence-2's task choice).

Logic only; each app lays the result out. The family comes from the model's config.json
(``core.captioning.model_family``), as for loading.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.captioning import FAMILIES, Family, model_family
from core.errors import ModelUnavailableError


@dataclass(frozen=True)
class PromptField:
    """What the prompt box shows for one model."""

    family: str  # the model's family name ("blip", "florence2", ...)
    visible: bool  # False: the family takes no prompt (ViT-GPT2): hide or disable the box
    default: str | None  # the family's default prompt (None: unconditional)
    choices: tuple[str, ...] | None  # a fixed set of prompts (Florence-2's tasks): offer a choice
    hint: str  # a one-line help text under the box


def suggested_models() -> list[str]:
    """The suggested checkpoints of every family, in the table's order (the picker's list; users
    may also type any hub id or a local folder)."""
    return [c.id for f in FAMILIES for c in f.suggested]


def prompt_field_for(family: Family) -> PromptField:
    if not family.takes_prompt:
        return PromptField(family.name, False, None, None, f"{family.name} captions without a prompt")
    if family.prompts is not None:
        return PromptField(family.name, True, family.default_prompt, tuple(family.prompts),
                           f"{family.name}: choose a task")
    if family.default_prompt is None:
        return PromptField(family.name, True, None, None,
                           "optional: the caption's first words (kept in the caption)"
                           if family.prompt_style == "prefix" else "optional: text given with the image")
    return PromptField(family.name, True, family.default_prompt, None,
                       f"default: {family.default_prompt!r}")


def prompt_field(model: str | None) -> PromptField:
    """The prompt box for ``model`` (hub id, folder or None for the default), from its config.json.

    Raises:
        ModelUnavailableError: its config cannot be read or its family is not supported.
    """
    return prompt_field_for(model_family(model))


def picker_models(default: str | None) -> list[str]:
    """The model picker's list: the app's start-up model first, then the suggested checkpoints
    (each once). ``default`` None (``$IMG2TEXT_MODEL`` / the built-in default) is not listed."""
    first = [default] if default else []
    return list(dict.fromkeys([*first, *suggested_models()]))


def picked_prompt_field(model: str | None) -> tuple[PromptField | None, str | None]:
    """The prompt box for a picked model, or ``(None, why)`` when its config cannot be read (the
    model bar shows ``why``, the ModelUnavailableError's message, instead of the app failing)."""
    try:
        return prompt_field(model), None
    except ModelUnavailableError as exc:
        return None, str(exc)


def chosen_prompt(*boxes: str | None) -> str | None:
    """The prompt of the generation settings from the prompt widgets (a text box, a task choice):
    the first one that is not blank; None (the family's default) when all are."""
    return next((b for b in boxes if isinstance(b, str) and b.strip()), None)
