"""Gradio-only settings (host, port, upload cap, queue) on top of core.settings' shared ones."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core import ConfigError
from core.settings import (
    HOST_ENV,
    MAX_UPLOAD_ENV,
    MCP_ENV,
    PORT_ENV,
    QUEUE_SIZE_ENV,
    AppSettings,
    add_arguments,
    env_flag,
    env_int,
    settings_from_args,
)

__all__ = ["CACHE_ENV", "HOST_ENV", "MCP_ENV", "PORT_ENV", "QUEUE_SIZE_ENV", "AppConfig", "build_parser", "parse_config"]

CACHE_ENV = "IMG2TEXT_CACHE_SECONDS"


@dataclass(frozen=True)
class AppConfig(AppSettings):
    """Everything the Gradio front end can be told at start-up (shared fields: AppSettings)."""

    # Interface to bind: 127.0.0.1 keeps the app local; 0.0.0.0 exposes it on the network.
    host: str = "127.0.0.1"
    # TCP port of the web server.
    port: int = 7860
    # Largest accepted upload, in MB (enforced by Gradio before the file reaches our code).
    max_upload_mb: int = 10
    # Requests allowed to wait in the queue; more are refused with "queue full".
    queue_size: int = 32
    # Cached uploads/downloads older than this are deleted (checked every min(this, 600) s).
    cache_seconds: int = 3600
    # Also serve captioning and search as MCP tools at /gradio_api/mcp/ (gradio_app/mcp_tools.py).
    mcp: bool = False

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gradio_app",
        description="Caption images, search similar images and inspect training runs in a browser.")
    add_arguments(parser)
    parser.add_argument("--host", default=None, help=f"interface to bind (env {HOST_ENV}; default 127.0.0.1)")
    parser.add_argument("--port", default=None, help=f"port (env {PORT_ENV}; default 7860)")
    parser.add_argument("--max-upload-mb", default=None,
                        help=f"upload size limit in MB (env {MAX_UPLOAD_ENV}; default 10)")
    parser.add_argument("--queue-size", default=None,
                        help=f"requests allowed to wait; more get 'queue full' (env {QUEUE_SIZE_ENV}; default 32)")
    parser.add_argument("--mcp", action="store_true", default=None,
                        help=f"also serve the MCP tools at /gradio_api/mcp/ (env {MCP_ENV}=1)")
    return parser


def parse_config(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> AppConfig:
    """Flags win over environment variables, which win over the defaults.

    Raises:
        SystemExit: bad flags or values (argparse prints the reason).
    """
    env = os.environ if env is None else env
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = AppConfig(
            **settings_from_args(args, env),
            host=args.host or env.get(HOST_ENV) or AppConfig.host,
            port=env_int(args.port or env.get(PORT_ENV), "--port", AppConfig.port),
            max_upload_mb=env_int(args.max_upload_mb or env.get(MAX_UPLOAD_ENV), "--max-upload-mb",
                                  AppConfig.max_upload_mb),
            queue_size=env_int(args.queue_size or env.get(QUEUE_SIZE_ENV), "--queue-size", AppConfig.queue_size),
            cache_seconds=env_int(env.get(CACHE_ENV), CACHE_ENV, AppConfig.cache_seconds),
            mcp=bool(args.mcp) or env_flag(env.get(MCP_ENV), MCP_ENV),
        )
    except ConfigError as exc:
        parser.error(str(exc))
    if config.port > 65535:
        parser.error(f"port must be 1-65535, got {config.port}")
    return config
