"""``img2text models``: models worth trying, by section.

``captioners``: the captioning families (:data:`core.captioning.FAMILIES`, the table the Captioner
loads from), each with suggested checkpoints, parameter count, default prompt and licence.
``encoders``: pretrained image encoders for search (``img2text ssl embed --encoder ID``): id,
family, embedding dimension, parameters, licence, and whether a text tower allows text-to-image
search by meaning. Torch-free: it only prints the two tables.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

SECTIONS = ("captioners", "encoders")
COLUMNS = ("family", "checkpoint", "parameters", "default prompt", "licence")
ENCODER_COLUMNS = ("id", "family", "dim", "params", "licence", "text")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models", help="list the captioning families and pretrained encoders, with suggested checkpoints",
        description="captioners: the model families `img2text caption --model` takes (chosen from the "
        "model's config.json), each with suggested hub checkpoints, parameter count, default prompt "
        "and licence; any checkpoint of a listed family works, hub id or local folder. encoders: "
        "pretrained image encoders for `img2text ssl embed --encoder ID` (CLIP and SigLIP also search "
        "by meaning: `ssl search --text`). Parameters are approximate, from the model cards.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--section", choices=SECTIONS, default=None, help="only this section; None means all")
    p.add_argument("--json", action="store_true", help="print JSON ({section: rows}) instead of tables")
    p.set_defaults(func=run)


def rows() -> list[dict[str, Any]]:
    """The captioners section: one row per suggested checkpoint (family fields repeated)."""
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


def encoder_rows() -> list[dict[str, Any]]:
    """The encoders section as plain dicts."""
    from core.search import SUGGESTED_ENCODERS

    return [asdict(e) for e in SUGGESTED_ENCODERS]


def _aligned(columns: tuple[str, ...], cells: list[list[str]]) -> str:
    widths = [max(len(c[i]) for c in [list(columns), *cells]) for i in range(len(columns))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def table(records: list[dict[str, Any]]) -> str:
    """The captioners as aligned columns. Default prompt: '-' = the family takes none; '(none)' =
    it captions unconditionally unless given one."""
    def prompt(r: dict[str, Any]) -> str:
        return (r["default_prompt"] or "(none)") if r["takes_prompt"] else "-"

    return _aligned(COLUMNS, [[r["family"], r["checkpoint"], r["parameters"], prompt(r), r["licence"]]
                              for r in records])


def encoder_table(records: list[dict[str, Any]]) -> str:
    """The encoders as aligned columns."""
    return _aligned(ENCODER_COLUMNS, [[r["id"], r["family"], str(r["dimension"]), str(r["parameters"]),
                                       r["licence"], "yes" if r["text"] else "no"] for r in records])


def run(args: argparse.Namespace) -> int:
    wanted = [args.section] if args.section else list(SECTIONS)
    found = {"captioners": rows, "encoders": encoder_rows}
    sections = {name: found[name]() for name in wanted}
    if args.json:
        print(json.dumps(sections, indent=2))
        return 0
    titles = {"captioners": ("captioners (img2text caption --model ID)", table),
              "encoders": ("encoders (img2text ssl embed --encoder ID)", encoder_table)}
    print("\n\n".join(f"{titles[n][0]}:\n{titles[n][1](r)}" for n, r in sections.items()))
    return 0
