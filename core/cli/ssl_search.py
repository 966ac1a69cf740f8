"""`img2text ssl embed|search|eval`: build an embedding index, query it, score retrieval."""

from __future__ import annotations

import argparse


def register(ssl_sub: argparse._SubParsersAction) -> None:
    """Add ``embed``, ``search`` and ``eval`` to the ``img2text ssl`` sub-parsers (being built)."""
    for name in ("embed", "search", "eval"):
        p = ssl_sub.add_parser(name, help="(being built)")
        p.set_defaults(func=_not_built(name))


def _not_built(name: str):  # type: ignore[no-untyped-def]
    def run(args: argparse.Namespace) -> int:
        raise ValueError(f"'ssl {name}' is not built yet")

    return run
