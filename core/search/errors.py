"""The errors search raises on purpose; all derive from :class:`core.errors.Img2TextError`."""

from __future__ import annotations

from core.errors import CheckpointError, ConfigError, Img2TextError


class IndexFormatError(CheckpointError):
    """An index folder is missing, partial, corrupt or of an unknown format."""


class QueryError(Img2TextError, ValueError):
    """A search request is invalid: bad ``k``, unknown id, a vector of the wrong size.

    Also a ``ValueError``, which is what these cases raised before.
    """


class IndexConfigError(ConfigError):
    """An index build option is invalid: unknown ``kind``, unreadable memory budget, ..."""


__all__ = ["IndexConfigError", "IndexFormatError", "QueryError"]
