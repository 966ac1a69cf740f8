"""The apps' model picker list and prompt box, per family (tiny models read by path)."""

from __future__ import annotations

from pathlib import Path

import pytest

import core
from core.captioning import FAMILIES
from core.workflows import prompt_field, suggested_models
from tests.fixtures.tiny_families import tiny_family_model


def test_suggested_models_cover_every_family() -> None:
    ids = suggested_models()
    assert len(ids) == len(set(ids)) and ids[0] == "ydshieh/vit-gpt2-coco-en"
    assert {f.suggested[0].id for f in FAMILIES} <= set(ids)


def test_prompt_box_per_family(tiny_model_dir: Path) -> None:
    vit = prompt_field(str(tiny_model_dir))
    assert (vit.family, vit.visible, vit.default) == ("vit-gpt2", False, None)
    florence = prompt_field(str(tiny_family_model("florence2")))
    assert florence.visible and florence.default == "<CAPTION>"
    assert florence.choices == ("<CAPTION>", "<DETAILED_CAPTION>", "<MORE_DETAILED_CAPTION>", "<OCR>")
    blip = prompt_field(str(tiny_family_model("blip")))
    assert blip.visible and blip.default is None and blip.choices is None and "first words" in blip.hint
    chat = prompt_field(str(tiny_family_model("qwen2_vl")))
    assert chat.default == "Describe this image in one sentence." and chat.choices is None


def test_unknown_model_is_the_loading_error(tmp_path: Path) -> None:
    with pytest.raises(core.ModelUnavailableError, match="does not exist"):
        prompt_field(str(tmp_path / "missing"))
