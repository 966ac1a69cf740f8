"""``img2text models``: models worth trying, by section.

The ``encoders`` section lists pretrained image encoders for search (``img2text ssl embed
--encoder ID``): id, family, embedding dimension, parameters, licence, and whether a text tower
allows text-to-image search by meaning. (Captioning models may join as their own section.)
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from core.cli import EXIT_OK

SECTIONS = ("encoders",)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``models`` command."""
    p = sub.add_parser("models", help="list suggested models (pretrained encoders for search)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       description="Suggested models by section. encoders: pretrained image encoders for "
                       "`img2text ssl embed --encoder ID` (CLIP and SigLIP also search by meaning: "
                       "`ssl search --text`). Parameters are approximate, from the model cards.")
    p.add_argument("--section", choices=SECTIONS, default=None, help="only this section; None means all")
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    p.set_defaults(func=_run)


def encoder_rows() -> list[dict[str, object]]:
    """The encoders section as plain dicts."""
    from core.search import SUGGESTED_ENCODERS

    return [asdict(e) for e in SUGGESTED_ENCODERS]


def _run(args: argparse.Namespace) -> int:
    rows = encoder_rows()
    if args.format == "json":
        print(json.dumps({"encoders": rows}, indent=2))
        return EXIT_OK
    print("encoders (img2text ssl embed --encoder ID):")
    head = f"  {'id':<36} {'family':<8} {'dim':>5} {'params':>7} {'licence':<11} text"
    print(head)
    for r in rows:
        print(f"  {r['id']:<36} {r['family']:<8} {r['dimension']:>5} {r['parameters']:>7} "
              f"{r['licence']:<11} {'yes' if r['text'] else 'no'}")
    return EXIT_OK
