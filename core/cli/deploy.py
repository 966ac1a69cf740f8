"""``img2text deploy space --sdk gradio|streamlit OUT_DIR``: a folder to push to a Space or Streamlit Cloud."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.cli import EXIT_OK
from core.cli.config_options import add_config_options, config_from_args
from core.cli.space_config import APP_FILES, SpaceConfig


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``deploy`` command group (``space``)."""
    fmt = argparse.ArgumentDefaultsHelpFormatter
    group = sub.add_parser("deploy", help="share the apps: a Hugging Face Space or Streamlit Cloud folder",
                           formatter_class=fmt)
    deploy_sub = group.add_subparsers(dest="deploy_command", required=True, metavar="DEPLOY_COMMAND")
    p = deploy_sub.add_parser(
        "space", help="write a folder that can be pushed as it is to a Space or Streamlit Community Cloud",
        description="Write OUT_DIR: the project's packages, an entry file (app.py for Gradio, "
        "streamlit_app.py for Streamlit) that sets the app's settings, a pinned requirements.txt and the "
        "README front matter the Hugging Face Hub reads. How to push it: docs/deploy.md.",
        formatter_class=fmt)
    p.add_argument("out", type=Path, metavar="OUT_DIR", help="folder to write (new or empty)")
    add_config_options(p, SpaceConfig)
    p.set_defaults(func=_run_space)


def _run_space(args: argparse.Namespace) -> int:
    from core.cli.space import (
        write_space,  # reads the installed versions; imports core.settings (torch)
    )

    config = config_from_args(SpaceConfig, args)
    app_file = write_space(config, args.out)
    start = f"python {APP_FILES['gradio']}" if config.sdk == "gradio" else f"streamlit run {APP_FILES['streamlit']}"
    print(f"wrote {args.out} ({config.sdk}); try it locally: cd {args.out} && pip install -r requirements.txt "
          f"&& {start}; push it as docs/deploy.md says")
    return EXIT_OK if app_file.is_file() else 2
