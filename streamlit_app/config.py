"""Streamlit's part of the settings: app flags come after ``--``; the rest is core.settings.

Host, port and the upload limit belong to Streamlit itself: ``--server.address``,
``--server.port``, ``--server.maxUploadSize`` (or ``STREAMLIT_SERVER_*`` env variables, or
``streamlit_app/.streamlit/config.toml``, which sets 127.0.0.1:8501 and 10 MB).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence

from core.settings import AppSettings, add_arguments, settings_from_args


def parse_settings(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> tuple[AppSettings, list[str]]:
    """Flags win over env, env over defaults. Returns the settings and any ignored arguments.

    Raises:
        ConfigError: a bad number (the page shows it).
    """
    parser = argparse.ArgumentParser(prog="streamlit run streamlit_app/app.py --", allow_abbrev=False, add_help=False)
    add_arguments(parser)
    args, unknown = parser.parse_known_args(list(argv or []))
    return AppSettings(**settings_from_args(args, env)), unknown
