"""`img2text ssl ...` (being built: see the SSL/search issue)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ssl", help="(not built yet)")
    p.set_defaults(func=lambda args: (_ for _ in ()).throw(ValueError("'ssl' is not built yet")))
