"""``img2text deploy space``: a folder that can be pushed as it is to a Hugging Face Space
(Gradio or Streamlit SDK) or to Streamlit Community Cloud.

The folder holds the project's own packages (``core`` and the chosen front end, copied from
the installed project: a Space installs only ``requirements.txt`` before the app starts, so a
wheel beside it would not be there yet), an entry file that sets the app's settings as
environment defaults (a Space's variables still win) and starts the app as the platform starts
it, a ``requirements.txt`` pinned to the versions installed here, and the README front matter
the Hub reads. Optional: the captioning model (a ``save_pretrained`` folder) and an index folder
shipped inside. The layout is described in docs/deploy.md.
"""

from __future__ import annotations

import importlib.metadata as metadata
import platform
import re
import shutil
from pathlib import Path

from core.captioning import DEFAULT_MODEL
from core.cli.space_config import APP_FILES, SpaceConfig
from core.errors import ConfigError
from core.fileio import atomic_write_text
from core.settings import (
    DEVICE_ENV,
    INDEX_ENV,
    MAX_UPLOAD_ENV,
    MCP_ENV,
    MODEL_ENV,
    PRECISION_ENV,
    QUEUE_SIZE_ENV,
)

PROJECT = "image-to-text"  # the distribution whose requirements are pinned
PACKAGES = {"gradio": ("core", "gradio_app"), "streamlit": ("core", "streamlit_app")}
SKIPPED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyi", ".streamlit")


def pinned_requirements(sdk: str) -> list[str]:
    """``name==version`` for the project's dependencies and the ``sdk`` extra, as installed here.

    Raises:
        ConfigError: the project or one of them is not installed (the fix: install that extra).
    """
    try:
        requires = metadata.requires(PROJECT) or []
    except metadata.PackageNotFoundError:
        raise ConfigError(f"{PROJECT} is not installed: run `pip install -e .[{sdk}]` in the checkout") from None
    lines = []
    for raw in requires:
        spec, _, marker = raw.partition(";")
        extra = re.search(r"""extra\s*==\s*["']([^"']+)["']""", marker)
        if extra and extra.group(1) != sdk:
            continue
        name = re.match(r"[A-Za-z0-9._-]+(\[[^\]]*\])?", spec.strip())
        assert name is not None  # a requirement always starts with its name
        base = name.group(0).split("[")[0]
        try:
            version = metadata.version(base).split("+")[0]  # 2.14.1+cu130 -> 2.14.1 (any build matches)
        except metadata.PackageNotFoundError:
            raise ConfigError(f"{base} is not installed: run `pip install -e .[{sdk}]` first") from None
        lines.append(f"{name.group(0)}=={version}")
    return lines


def _front_matter(config: SpaceConfig, model_id: str | None) -> str:
    sdk_version = metadata.version(config.sdk)
    python = ".".join(platform.python_version_tuple()[:2])
    lines = ["---", f"title: {config.title}", "emoji: 🖼️", "colorFrom: indigo", "colorTo: blue",
             f"sdk: {config.sdk}", f"sdk_version: {sdk_version}", f'python_version: "{python}"',
             f"app_file: {APP_FILES[config.sdk]}", "pinned: false", "license: mit",
             "short_description: Caption images and find similar ones"]
    if model_id:
        lines += ["models:", f"  - {model_id}"]
    return "\n".join([*lines, "---", ""])


def _settings(config: SpaceConfig, model: str, index: str | None) -> dict[str, str]:
    values = {MODEL_ENV: model, DEVICE_ENV: config.device, PRECISION_ENV: config.precision}
    if config.sdk == "gradio":  # Streamlit's upload cap is in .streamlit/config.toml; it has no queue or MCP
        values |= {MAX_UPLOAD_ENV: str(config.max_upload_mb), QUEUE_SIZE_ENV: str(config.queue_size),
                   MCP_ENV: "1" if config.mcp else "0"}
    if index:
        values[INDEX_ENV] = index
    return values


def _copy_project(out: Path, sdk: str) -> None:
    root = Path(__file__).resolve().parents[2]  # the installed project: core/ and the front ends
    for package in PACKAGES[sdk]:
        if not (root / package / "__init__.py").is_file():
            raise ConfigError(f"{root / package}: the {package} package is missing; install the project with "
                              f"`pip install .[{sdk}]`")
        shutil.copytree(root / package, out / package, ignore=SKIPPED)


def write_space(config: SpaceConfig, out: Path) -> Path:
    """Write the folder ``out`` (it must not exist, or be empty). Returns the app file's path.

    Raises:
        ConfigError: ``out`` is not empty, or the project / a pinned package is not installed.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out}: the folder is not empty; give a new folder (nothing was written)")
    requirements = pinned_requirements(config.sdk)
    out.mkdir(parents=True, exist_ok=True)
    _copy_project(out, config.sdk)
    model = config.model or DEFAULT_MODEL
    model_id: str | None = model.split("@")[0]
    if Path(model).expanduser().is_dir():  # a local model ships inside the Space
        shutil.copytree(Path(model).expanduser(), out / "model", ignore=SKIPPED)
        model, model_id = "model", None
    index = None
    if config.index is not None:
        from core.search import copy_portable

        copy_portable(config.index, out / "index", images=config.index_images)
        index = "index"
    from core.cli import space_files

    app_file = out / APP_FILES[config.sdk]
    atomic_write_text(app_file, space_files.entry(config.sdk, _settings(config, model, index)))
    atomic_write_text(out / "requirements.txt", space_files.requirements(requirements))
    atomic_write_text(out / "README.md", _front_matter(config, model_id) + space_files.readme(config, model_id))
    if config.sdk == "streamlit":
        atomic_write_text(out / ".streamlit" / "config.toml", space_files.streamlit_config(config.max_upload_mb))
    return app_file
