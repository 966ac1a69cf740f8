"""``img2text models``: the captioning families, their suggested checkpoints and default prompts.

Torch-free: it prints :data:`core.captioning.FAMILIES` (the table the Captioner loads from).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

COLUMNS = ("family", "checkpoint", "parameters", "default prompt", "licence")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models", help="list the captioning families and suggested checkpoints",
        description="The model families `img2text caption --model` takes (chosen from the model's "
        "config.json), each with suggested hub checkpoints, parameter count, default prompt and "
        "licence. Any checkpoint of a listed family works, hub id or local folder.",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def rows() -> list[dict[str, Any]]:
    """One row per suggested checkpoint (family fields repeated), in the table's order."""
    from core.captioning import FAMILIES

    out = []
    for family in FAMILIES:
        for checkpoint in family.suggested:
            out.append({
                "family": family.name, "model_types": list(family.model_types),
                "checkpoint": checkpoint.id, "parameters": checkpoint.parameters,
                "default_prompt": family.default_prompt, "takes_prompt": family.takes_prompt,
                "prompts": list(family.prompts) if family.prompts else None,
                "licence": checkpoint.licence, "int8": family.int8,
            })
    return out


def table(records: list[dict[str, Any]]) -> str:
    """Aligned columns. Default prompt: '-' = the family takes none; '(none)' = it captions
    unconditionally unless given one."""
    def prompt(r: dict[str, Any]) -> str:
        return (r["default_prompt"] or "(none)") if r["takes_prompt"] else "-"

    cells = [[r["family"], r["checkpoint"], r["parameters"], prompt(r), r["licence"]] for r in records]
    widths = [max(len(c[i]) for c in [list(COLUMNS), *cells]) for i in range(len(COLUMNS))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(COLUMNS, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def run(args: argparse.Namespace) -> int:
    records = rows()
    print(json.dumps(records, indent=2) if args.json else table(records))
    return 0
