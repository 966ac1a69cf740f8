"""The ``img2text`` command: one sub-command module per verb group.

Exit status: 0 all good, 1 some inputs failed (reported on stderr), 2 usage or setup error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from core import Img2TextError

EXIT_OK, EXIT_PARTIAL, EXIT_ERROR = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    from core.cli import caption, data, deploy, evaluate, ssl

    parser = argparse.ArgumentParser(
        prog="img2text",
        description="Caption images with ViT-GPT2, learn image embeddings without labels "
        "(SimCLR), and search similar images.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (caption, evaluate, ssl, data, deploy):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``img2text`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (Img2TextError, OSError, ValueError) as exc:
        # Img2TextError: every error the project raises on purpose (its message names the input,
        # the reason and the fix); OSError: the file system refused a path the user gave;
        # ValueError: input checks in core.search not yet converted to Img2TextError (no COCO
        # annotations for `ssl eval` in core/search/evaluate.py, --out not a folder in
        # core/search/index.py, a bad caption file line in core/search/captionfile.py); drop it
        # when none remain.
        print(f"img2text: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("img2text: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
