"""``python -m gradio_app [--host H --port P --index DIR --model M --run DIR --examples DIR --mcp]``."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from core import quiet_libraries

quiet_libraries()  # before torch is imported: torch's/torchao's warnings only with IMG2TEXT_LOG_LEVEL

from gradio_app.app import build_app, launch_kwargs  # noqa: E402
from gradio_app.config import parse_config  # noqa: E402
from gradio_app.services import Services  # noqa: E402


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
