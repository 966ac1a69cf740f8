"""argparse options generated from a dataclass config, and parsed options turned back into it.

Each field ``name`` becomes ``--name-in-kebab-case`` (plus any aliases the caller gives), typed
from its annotation, with the help text of ``field(metadata={"help": ...})`` and its default
shown. A field added to ``SSLConfig`` or ``GenerationOptions`` therefore appears in the CLI with
no second edit. Torch-free on purpose: ``img2text ... --help`` builds these parsers.

Type mapping:
    ``bool`` -> ``--x / --no-x``; ``int``/``float``/``str``/``Path`` -> that type;
    ``X | None`` -> ``X`` or the word ``none``; ``Literal[...]`` or ``metadata["choices"]`` ->
    choices; ``tuple[X, ...]`` -> one or more values; ``tuple[X, Y]`` -> exactly two.

Parsed values are stored under ``dest = "<ClassName>.<field>"`` and default to "not given",
so :func:`config_overrides` returns exactly what the user typed.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
Parser = argparse.ArgumentParser | argparse._ArgumentGroup  # what add_argument is called on


def flag_name(name: str) -> str:
    """``embedding_dim`` -> ``--embedding-dim``."""
    return "--" + name.replace("_", "-")


def _dest(cls: type, name: str) -> str:
    return f"{cls.__name__}.{name}"


def _optional_of(annotation: Any) -> tuple[Any, bool]:
    """``int | None`` -> ``(int, True)``; anything else -> ``(annotation, False)``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(annotation)) == 2:
            return args[0], True
    return annotation, False


def _scalar(kind: Any, optional: bool) -> Callable[[str], Any]:
    """The argparse ``type=`` converter for one value of ``kind``."""
    if kind not in (int, float, str, Path):
        raise TypeError(f"no command-line form for fields of type {kind!r}")

    def convert(text: str) -> Any:
        if optional and text.lower() == "none":
            return None
        return kind(text)

    convert.__name__ = getattr(kind, "__name__", "value")  # argparse names it in "invalid int value"
    return convert


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return " ".join(map(str, value)) or "()"
    return str(value)


def _field_kwargs(f: dataclasses.Field, annotation: Any, default: Any) -> dict[str, Any]:
    """``add_argument`` keywords for one field (type, nargs, choices, action, help)."""
    kind, optional = _optional_of(annotation)
    meta = f.metadata
    kwargs: dict[str, Any] = {}
    if kind is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif typing.get_origin(kind) is typing.Literal:
        choices = typing.get_args(kind)
        kwargs.update(type=type(choices[0]), choices=choices)
    elif typing.get_origin(kind) is tuple:
        items = typing.get_args(kind)
        variadic = len(items) == 2 and items[1] is Ellipsis
        if not variadic and len(set(items)) != 1:
            raise TypeError(f"{f.name}: tuples of mixed types have no command-line form")
        kwargs.update(type=_scalar(items[0], False), nargs="+" if variadic else len(items))
    else:
        kwargs["type"] = _scalar(kind, optional)
    if "choices" in meta:
        kwargs["choices"] = tuple(meta["choices"])
    if kind is not bool and "choices" not in kwargs:
        kwargs["metavar"] = meta.get("metavar", f.name.upper())
    text = meta.get("help", "")
    if optional and kind is not bool:
        text += (" " if text else "") + "('none' = unset)"
    kwargs["help"] = f"{text} (default: {_shown(default)})".strip().replace("%", "%%")
    return kwargs


def config_field_defaults(cls: type) -> dict[str, Any]:
    """Each field's default value (factories called); fields without one are left out."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def add_config_options(
    parser: Parser,
    cls: type,
    *,
    aliases: Mapping[str, Sequence[str]] | None = None,
    required: Iterable[str] = (),
    defaults: Mapping[str, Any] | None = None,
    skip: Iterable[str] = (),
) -> list[str]:
    """Add one option per field of the dataclass ``cls`` to ``parser`` (or an argument group).

    Args:
        parser: where to add the options.
        cls: a dataclass whose fields carry ``metadata={"help": ...}``.
        aliases: field -> extra flags that also set it, listed first (e.g. ``{"data_dir":
            ["--data"]}`` keeps a documented short name working next to ``--data-dir``).
        required: fields the user must give (no default shown).
        defaults: field -> default shown in help when it differs from the dataclass's.
        skip: fields the caller declares itself.

    Returns:
        The names of the fields that got an option.

    Raises:
        TypeError: a field type with no command-line form (checked when the parser is built).
    """
    aliases, required, skip = aliases or {}, set(required), set(skip)
    shown = {**config_field_defaults(cls), **(defaults or {})}
    hints = typing.get_type_hints(cls)
    added = []
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.init:
            continue
        kwargs = _field_kwargs(f, hints[f.name], shown.get(f.name, dataclasses.MISSING))
        if f.name in required:
            kwargs["required"] = True
            kwargs["help"] = kwargs["help"].rsplit(" (default:", 1)[0]
        flags = [*aliases.get(f.name, ()), flag_name(f.name)]
        parser.add_argument(*dict.fromkeys(flags), dest=_dest(cls, f.name),
                            default=argparse.SUPPRESS, **kwargs)
        added.append(f.name)
    return added


def config_overrides(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The fields of ``cls`` that were given on the command line -> their parsed values."""
    out = {}
    for f in dataclasses.fields(cls):
        dest = _dest(cls, f.name)
        if hasattr(args, dest):
            value = getattr(args, dest)
            out[f.name] = tuple(value) if isinstance(value, list) else value
    return out


def config_from_args(cls: type[T], args: argparse.Namespace, **fixed: Any) -> T:
    """Build ``cls`` from its defaults, the given options and ``fixed`` (which wins).

    Raises:
        Whatever ``cls`` raises for invalid values (``ConfigError`` for the project's configs).
    """
    return cls(**{**config_overrides(cls, args), **fixed})
