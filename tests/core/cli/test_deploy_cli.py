"""`img2text deploy space`: what each folder holds (front matter, pins, entry settings, layout)."""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import platform
from pathlib import Path

import pytest

from core.cli import main
from core.cli.space import SpaceConfig, pinned_requirements, write_space
from core.errors import ConfigError


@pytest.fixture(scope="module")
def apps_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.browser.support import app_data

    return app_data(tmp_path_factory.getbasetemp()).index


def front_matter(readme: Path) -> dict[str, object]:
    """The README's YAML front matter (flat keys, and the one ``models:`` list)."""
    head = readme.read_text(encoding="utf-8").split("---\n")[1]
    out: dict[str, object] = {}
    for line in head.splitlines():
        if line.startswith("  - "):
            out.setdefault("models", []).append(line[4:])  # type: ignore[union-attr]
        elif line.endswith(":"):
            out[line[:-1]] = []
        else:
            key, value = line.split(": ", 1)
            out[key] = value.strip('"')
    return out


def entry_settings(app_file: Path) -> dict[str, str]:
    tree = ast.parse(app_file.read_text(encoding="utf-8"))
    node = next(n for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "SETTINGS")
    return ast.literal_eval(node.value)


def test_gradio_folder_from_the_cli(tmp_path: Path, tiny_model_dir: Path) -> None:
    out = tmp_path / "space"
    assert main(["deploy", "space", "--sdk", "gradio", str(out), "--mcp", "--precision", "int8",
                 "--queue-size", "4", "--model", "someone/captioner@abc123"]) == 0
    meta = front_matter(out / "README.md")
    assert meta["sdk"] == "gradio" and meta["sdk_version"] == metadata.version("gradio")
    assert meta["app_file"] == "app.py" and (out / "app.py").is_file()
    assert meta["python_version"] == ".".join(platform.python_version_tuple()[:2])
    assert meta["models"] == ["someone/captioner"] and meta["title"] == "image-to-text"
    assert entry_settings(out / "app.py") == {
        "IMG2TEXT_MODEL": "someone/captioner@abc123", "IMG2TEXT_DEVICE": "auto", "IMG2TEXT_PRECISION": "int8",
        "IMG2TEXT_MAX_UPLOAD_MB": "10", "IMG2TEXT_QUEUE_SIZE": "4", "IMG2TEXT_MCP": "1"}
    for package in ("core", "gradio_app"):  # the project ships as its sources, without caches
        assert (out / package / "__init__.py").is_file() and not list((out / package).rglob("__pycache__"))
    assert not (out / "streamlit_app").exists() and not (out / "model").exists()


def test_requirements_pin_every_dependency_at_the_installed_version(tmp_path: Path) -> None:
    write_space(SpaceConfig(), tmp_path / "g")
    lines = [ln for ln in (tmp_path / "g" / "requirements.txt").read_text().splitlines() if ln and ln[0] != "#"]
    assert lines == pinned_requirements("gradio")
    pins = dict(line.split("==") for line in lines)
    assert pins["gradio[mcp]"] == metadata.version("gradio")  # the MCP extra comes with the Space
    assert pins["torch"] == metadata.version("torch").split("+")[0]
    assert {"transformers", "pillow", "safetensors", "faiss-cpu", "gradio-client"} <= set(pins)
    assert "streamlit" not in pins and "pytest" not in pins and "ray[data]" not in pins


def test_streamlit_folder_has_the_cloud_layout_and_ships_model_and_index(tmp_path: Path, tiny_model_dir: Path,
                                                                         apps_index: Path) -> None:
    out = tmp_path / "st"
    write_space(SpaceConfig(sdk="streamlit", model=str(tiny_model_dir), index=apps_index, max_upload_mb=3), out)
    meta = front_matter(out / "README.md")
    assert (meta["sdk"], meta["app_file"]) == ("streamlit", "streamlit_app.py")
    assert meta["sdk_version"] == metadata.version("streamlit") and "models" not in meta  # a local model
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((out / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == 3
    assert entry_settings(out / "streamlit_app.py") == {
        "IMG2TEXT_MODEL": "model", "IMG2TEXT_DEVICE": "auto", "IMG2TEXT_PRECISION": "float32",
        "IMG2TEXT_INDEX": "index"}
    assert (out / "model" / "config.json").is_file() and (out / "index" / "index.json").is_file()
    assert (out / "streamlit_app" / "app.py").is_file() and not (out / "gradio_app").exists()
    pins = [ln.split("==")[0] for ln in (out / "requirements.txt").read_text().splitlines() if "==" in ln]
    assert "streamlit" in pins and "gradio[mcp]" not in pins


def test_refusals_name_the_input_and_the_fix(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    with pytest.raises(ConfigError, match="not empty"):
        write_space(SpaceConfig(), tmp_path / "full")
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["x"]
    with pytest.raises(ConfigError, match="not a saved index folder.*img2text ssl embed"):
        SpaceConfig(index=tmp_path)
    with pytest.raises(ConfigError, match="--queue-size must be >= 1"):
        SpaceConfig(queue_size=0)
    assert main(["deploy", "space", str(tmp_path / "full")]) == 2  # a message, no traceback
