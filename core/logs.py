"""Quiet library logs: users see the project's own lines, not torch's or torchao's warnings.

Torch prints ``_pytree.py:630 ... KernelPreference is an Enum subclass ...`` twice when torchao is
imported, and ``No CUDA runtime is found`` when the int8 encoder compiles; neither is about the
user's work. :func:`quiet_libraries` raises those loggers to ERROR before torch is imported (the
CLI calls it with ``--verbose``, both servers at start). ``IMG2TEXT_LOG_LEVEL=WARNING`` (or
``INFO``/``DEBUG``), or ``--verbose`` on the CLI, shows them again. Torch-free.
"""

from __future__ import annotations

import logging
import os

LOG_LEVEL_ENV = "IMG2TEXT_LOG_LEVEL"
#: The library loggers that speak on every run without saying anything about the user's work.
NOISY_LOGGERS = ("torch.utils._pytree", "torch.utils.cpp_extension", "torchao")
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def library_log_level(verbose: bool = False) -> int:
    """The level of :data:`NOISY_LOGGERS`: ``$IMG2TEXT_LOG_LEVEL`` when set, WARNING with
    ``verbose``, else ERROR (an unknown name in the variable counts as unset)."""
    name = os.environ.get(LOG_LEVEL_ENV, "").strip().upper()
    if name in _LEVELS:
        return int(getattr(logging, name))
    return logging.WARNING if verbose else logging.ERROR


def quiet_libraries(verbose: bool = False) -> None:
    """Set :data:`NOISY_LOGGERS` to :func:`library_log_level` (call before importing torch)."""
    level = library_log_level(verbose)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(level)
