"""The ``img2text`` command: one sub-command module per verb group.

Exit status: 0 all good, 1 some inputs failed (reported on stderr), 2 usage or setup error.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from core import Img2TextError, quiet_libraries
from core.logs import LOG_LEVEL_ENV

EXIT_OK, EXIT_PARTIAL, EXIT_ERROR = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    from core.cli import caption, data, deploy, evaluate, models, ssl

    parser = argparse.ArgumentParser(
        prog="img2text",
        description="Caption images (ViT-GPT2, BLIP, GIT, Florence-2, chat VLMs; see `img2text models`), learn image embeddings without labels "
        "(SimCLR), and search similar images.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (caption, evaluate, models, ssl, data, deploy):
        module.register(sub)
    _add_verbose(parser)
    return parser


def _add_verbose(parser: argparse.ArgumentParser) -> None:
    """``--verbose`` on every command (the libraries' own warnings are hidden without it)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        parser.add_argument("--verbose", action="store_true",
                            help=f"also show the libraries' warnings (torch, torchao); or set ${LOG_LEVEL_ENV}")
    for child in dict.fromkeys(subs[0].choices.values()) if subs else ():
        _add_verbose(child)


def _command_parser(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.ArgumentParser:
    """The parser of the (sub-)command that ``argv`` names, e.g. ``caption``'s or ``ssl search``'s."""
    for token in argv:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if subs and token in subs[0].choices:
            parser = subs[0].choices[token]
    return parser


def _suggestion(parser: argparse.ArgumentParser, unknown: str) -> str:
    """`` (did you mean --num-beams?)`` for an unknown option close to one of ``parser``'s."""
    if not unknown.startswith("--"):
        return ""
    name = unknown.split("=", 1)[0]
    options = [o for a in parser._actions for o in a.option_strings if o.startswith("--")]
    close = [o for o in options if o.endswith("-" + name[2:])] or difflib.get_close_matches(name, options, 1, 0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse ``argv``; an unknown option is the usage error of the command it was given to
    (its usage, not the top-level one), with the closest option suggested."""
    parser = build_parser()
    tokens = list(sys.argv[1:] if argv is None else argv)
    args, extras = parser.parse_known_args(tokens)
    if extras:
        command = _command_parser(parser, tokens)
        command.error(f"unrecognized arguments: {' '.join(extras)}{_suggestion(command, extras[0])}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``img2text`` console script."""
    args = parse_args(argv)
    quiet_libraries(getattr(args, "verbose", False))  # before any command imports torch
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


def run() -> NoReturn:
    """The ``img2text`` console script (and ``python -m core.cli``): :func:`main`, then exit.

    A background int8 compile still running when the command is done is not waited for: the
    process ends at once (its outputs are written and closed by then), because a daemon thread
    inside ``torch.compile`` can abort the interpreter's shutdown (SIGABRT, exit code 134).
    """
    code = main()
    compile_module = sys.modules.get("core.captioning.int8_compile")  # only if int8 was used
    if compile_module is not None and compile_module.compiling_now():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    run()
