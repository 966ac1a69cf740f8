"""The exceptions that `core` raises on purpose; everything a caller should catch.

Every one derives from :class:`Img2TextError`, so a front end can catch the project's own
errors (whose messages name the input, the reason and the fix) without catching bugs. Each also
keeps the built-in base it had before (``ValueError``, ``RuntimeError``), so older callers work.
:func:`changed_settings` words the "these settings differ" part of resume refusals.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class Img2TextError(Exception):
    """Base class of every error this project raises on purpose; the message is for users."""


class InvalidImageError(Img2TextError, ValueError):
    """An input could not be turned into an RGB image.

    The message always names the input (a path, ``<bytes: N bytes>``, ...) and the reason,
    so it can be shown to a user as it is.
    """

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")

    def __reduce__(self):  # keep (source, reason) across pickling (worker processes, Ray)
        return (type(self), (self.source, self.reason))


class ModelUnavailableError(Img2TextError, RuntimeError):
    """A captioning model could not be loaded; the message says how to fix it."""


class CheckpointError(Img2TextError, ValueError):
    """A weight file or checkpoint folder is missing, corrupt, unsafe or does not fit the model."""


class ConfigError(Img2TextError, ValueError):
    """A configuration or option value is invalid; the message names the field and the fix."""


class DatasetError(Img2TextError, ValueError):
    """A data set folder or annotation file is missing, malformed or unsafe."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A data folder, split, annotation or reference file, or an annotated image is missing.

    Both a :class:`DatasetError` (so front ends catch it with the project's errors) and a
    ``FileNotFoundError`` (what callers caught before the errors had a common base).
    """


def changed_settings(before: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """``"num_beams: 4 before, 1 now"`` for each setting that differs, nested dicts opened up
    (only their differing fields are named, never the two whole dicts), in key order.

    For refusal messages: a resumed run whose settings changed names exactly what changed.
    """
    out: list[str] = []
    for key in sorted(set(before) | set(now), key=str):
        a, b = before.get(key), now.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += changed_settings(a, b)
        elif a != b:
            out.append(f"{key}: {a!r} before, {b!r} now")
    return out
