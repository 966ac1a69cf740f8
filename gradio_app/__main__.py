"""``python -m gradio_app [--host H --port P --index DIR --model M --run DIR --examples DIR --mcp]``."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from gradio_app.app import build_app, launch_kwargs
from gradio_app.config import parse_config
from gradio_app.services import Services


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags/env, build the UI and serve it until interrupted."""
    config = parse_config(argv)
    services = Services(config)
    services.start()  # the model loads in the background; the page shows its state
    demo = build_app(config, services)
    print(f"image-to-text Gradio app on {config.url} (the model loads in the background)", flush=True)
    if config.mcp:
        print(f"MCP tools (streamable HTTP) on {config.url}/gradio_api/mcp/", flush=True)
    demo.launch(**launch_kwargs(config, services))
    return 0


if __name__ == "__main__":
    sys.exit(main())
