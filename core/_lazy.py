"""Lazy package exports (PEP 562): importing a package costs nothing until a name is used.

``img2text --help`` must print without importing torch or transformers, yet ``core.cli`` lives
inside ``core``, so ``core`` and the packages whose torch-free modules the CLI reads
(``core.captioning``, ``core.ssl``) list their exports by module instead of importing them.
``tests/core/cli/test_help_imports.py`` checks that every listed name resolves and that help
stays torch-free.

Usage in a package ``__init__``::

    if TYPE_CHECKING:  # the same names for type checkers
        from core.pkg.mod import thing
    __getattr__, __dir__ = lazy_exports(__name__, {"core.pkg.mod": ("thing",)})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, Iterable[str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module ``__getattr__`` and ``__dir__`` that import each export on first use.

    Args:
        package: the package's ``__name__``.
        exports: module path -> the public names it defines.

    Returns:
        ``(__getattr__, __dir__)`` to assign at module level; a resolved name is cached in the
        package's namespace, so the import happens once.

    Raises:
        AttributeError: (from ``__getattr__``) the name is not an export of ``package``.
    """
    where = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return __getattr__, __dir__
