"""Gradio front end: a thin layer over ``core`` (start it with ``python -m gradio_app``)."""

from gradio_app.app import build_app, launch_kwargs
from gradio_app.config import AppConfig, parse_config
from gradio_app.services import Services

__all__ = ["AppConfig", "Services", "build_app", "launch_kwargs", "parse_config"]
