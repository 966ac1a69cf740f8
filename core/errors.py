"""The exceptions that `core` raises on purpose; everything a caller should catch."""

from __future__ import annotations


class InvalidImageError(ValueError):
    """An input could not be turned into an RGB image.

    The message always names the input (a path, ``<bytes: N bytes>``, ...) and the reason,
    so it can be shown to a user as it is.
    """

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


class ModelUnavailableError(RuntimeError):
    """A captioning model could not be loaded; the message says how to fix it."""


class CheckpointError(ValueError):
    """A weight file or checkpoint folder is missing, corrupt, unsafe or does not fit the model."""
