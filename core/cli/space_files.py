"""The text of the files ``img2text deploy space`` writes (entry file, requirements, README body)."""

from __future__ import annotations

import json
from typing import Any

from core.settings import INDEX_ENV, MODEL_ENV

# Settings whose value is a folder inside the Space (made absolute from the entry file's folder).
FOLDER_SETTINGS = (MODEL_ENV, INDEX_ENV)

_ENTRY_HEAD = '''"""{what} (written by `img2text deploy space`; edit SETTINGS or set the Space's variables)."""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # the project's packages (core, the front end) ship beside this file

# The app's settings (docs/apps.md names them all). A variable already set (a Space's
# variables and secrets, Streamlit Cloud's secrets, `docker run -e`) wins over these.
SETTINGS = {settings}
for name, value in SETTINGS.items():
    if name in {folders!r} and (HERE / value).exists():
        value = str(HERE / value)  # a folder shipped inside the Space
    os.environ.setdefault(name, value)
'''

_GRADIO_START = '''# Spaces tell a Gradio app where to listen through GRADIO_SERVER_NAME/PORT (0.0.0.0:7860).
os.environ.setdefault("IMG2TEXT_HOST", os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"))
os.environ.setdefault("IMG2TEXT_PORT", os.environ.get("GRADIO_SERVER_PORT", "7860"))

from gradio_app.__main__ import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main([]))
'''

# Streamlit runs this file again on every interaction; run_path runs the app's script each time
# (an import would run it once). `streamlit_app` here is the package folder beside this file.
_STREAMLIT_START = '''import runpy  # noqa: E402

runpy.run_path(str(HERE / "streamlit_app" / "app.py"), run_name="__main__")
'''


def entry(sdk: str, settings: dict[str, str]) -> str:
    """``app.py`` (Gradio: ``python app.py``) or ``streamlit_app.py`` (``streamlit run streamlit_app.py``)."""
    what = "Hugging Face Space entry: starts the image-to-text Gradio app" if sdk == "gradio" else \
        "Streamlit Space / Streamlit Community Cloud entry: the image-to-text Streamlit app"
    head = _ENTRY_HEAD.format(what=what, settings=json.dumps(settings, indent=4), folders=FOLDER_SETTINGS)
    return head + "\n" + (_GRADIO_START if sdk == "gradio" else _STREAMLIT_START)


def requirements(pins: list[str]) -> str:
    """``requirements.txt``: the project's dependencies at the versions it was tested with."""
    head = ("# The image-to-text project's dependencies, pinned to the versions `img2text deploy space` found\n"
            "# installed. The project itself ships in this folder (core/ and the app's package).\n"
            "# A CPU-only machine can take torch's CPU build (a much smaller image): see docs/deploy.md.\n")
    return head + "\n".join(pins) + "\n"


def streamlit_config(max_upload_mb: int) -> str:
    """``.streamlit/config.toml`` at the folder's root (where the platforms run ``streamlit run``)."""
    return ("[server]\n"
            f"# Largest upload in MB (file_uploader and camera_input); the app also checks it per image.\n"
            f"maxUploadSize = {max_upload_mb}\n"
            "headless = true\n\n"
            "[browser]\ngatherUsageStats = false\n\n"
            "[client]\ntoolbarMode = \"minimal\"\n\n"
            "[theme]\nprimaryColor = \"#4f46e5\"\n")


def readme(config: Any, model_id: str | None) -> str:
    """The README body under the front matter: what the Space is and how it was made."""
    model = f"[`{model_id}`](https://huggingface.co/{model_id})" if model_id else "the model in `model/`"
    mcp = ("\nAgents can call it as an MCP server (streamable HTTP) at `/gradio_api/mcp/`: tools "
           "`caption_image`, `find_similar_images`, `find_images_by_words`.\n") if config.mcp else ""
    return (f"# {config.title}\n\nCaption images with {model}"
            f"{' and find similar gallery images' if config.index else ''}. "
            f"Made with the image-to-text project (`img2text deploy space --sdk {config.sdk}`); "
            f"default precision {config.precision}, uploads up to {config.max_upload_mb} MB.\n{mcp}")
