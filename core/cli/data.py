"""`img2text data ...` (being built: see the SSL/search issue)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="(not built yet)")
    p.set_defaults(func=lambda args: (_ for _ in ()).throw(ValueError("'data' is not built yet")))
