"""Fix-it texts of an unloadable model (issue 24): offline it is said at once, with what was tried
and commands that paste as they are, in each front end's own words."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def _imported(importtime_stderr: str) -> set[str]:
    """Top-level package names in ``python -X importtime`` output."""
    names = set()
    for line in importtime_stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def test_offline_default_model_is_refused_before_torch_loads_with_a_pasteable_command(tmp_path: Path,
                                                                                        tiny_coco_dir: Path) -> None:
    image = sorted((tiny_coco_dir / "val2017").glob("*.jpg"))[0]
    env = {k: v for k, v in os.environ.items() if k not in ("IMG2TEXT_MODEL", "HF_HUB_CACHE")}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "empty-hf"))
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "core.cli", "caption", str(image)],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert proc.returncode == 2
    # 9.2 s before (torch and transformers imported, then the cache asked); now neither is imported.
    assert {"torch", "transformers"} & _imported(proc.stderr) == set()
    err = "\n".join(line for line in proc.stderr.splitlines() if not line.startswith("import time:"))
    assert "Traceback" not in err and "couldn't connect" not in err
    assert "Cannot load captioning model 'ydshieh/vit-gpt2-coco-en': it is not in the local Hugging Face cache" in err
    assert "the hub was not asked, as HF_HUB_OFFLINE=1 is set" in err
    assert f"\n       img2text caption {image} --model /path/to/vit-gpt2-coco-en\n" in err  # this run's command
    assert f"{tmp_path / 'empty-hf' / 'hub'}" in err  # where it looked


@pytest.fixture()
def offline_message(monkeypatch: pytest.MonkeyPatch) -> str:
    from core.captioning.modelspec import ModelSpec, unavailable_message

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return unavailable_message(ModelSpec("nobody/model"), "it is not in the local Hugging Face cache")


def test_each_app_writes_the_commands_its_own_way(offline_message: str) -> None:
    from gradio_app.handlers import gradio_fix
    from streamlit_app.views.common import streamlit_fix

    assert "\n       streamlit run streamlit_app/app.py -- --model /path/to/vit-gpt2-coco-en\n" in streamlit_fix(
        offline_message)
    assert "\n       python -m gradio_app --model /path/to/vit-gpt2-coco-en\n" in gradio_fix(offline_message)
    assert "img2text caption" not in streamlit_fix(offline_message) + gradio_fix(offline_message)
