"""`img2text caption/eval/models` with a non-ViT-GPT2 family (the tiny BLIP, loaded by path)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import core
from core.captioning.families import FAMILIES
from core.cli import main
from tests.fixtures.tiny_families import tiny_family_model

PREFIX = "a photo of"


@pytest.fixture(scope="module")
def blip() -> Path:
    return tiny_family_model("blip")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, tiny_coco_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("photos")
    for src in sorted((tiny_coco_dir / "val2017").glob("*.jpg"))[:5]:
        (root / src.name).write_bytes(src.read_bytes())
    return root


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_caption_with_a_prompt_records_family_and_prompt(capsys, blip: Path, folder: Path,
                                                         tmp_path: Path) -> None:
    out = tmp_path / "caps.jsonl"
    args = ["caption", str(folder), "--model", str(blip), "--format", "jsonl", "-o", str(out), "-q",
            "--max-new-tokens", "8"]
    code, _, err = run(capsys, *args, "--prompt", PREFIX)
    assert code == 0, err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    paths = sorted(folder.glob("*.jpg"))
    want = core.Captioner(str(blip), device="cpu").caption_batch(paths, prompt=PREFIX, max_new_tokens=8)
    assert {r["path"]: r["caption"] for r in rows} == dict(zip(map(str, paths), want, strict=True))
    assert all(r["caption"].startswith(PREFIX) for r in rows)
    meta = json.loads((tmp_path / "caps.jsonl.meta.json").read_text())
    assert meta["family"] == "blip" and meta["generation"]["prompt"] == PREFIX
    assert (meta["generation"]["num_beams"], meta["generation"]["max_new_tokens"]) == (1, 8)

    out.write_text(out.read_text().splitlines()[0] + "\n")  # an interrupted run
    code, _, err = run(capsys, *args, "--resume", "--prompt", "a picture of")
    assert code == 2 and "prompt" in err and "a picture of" in err
    code, _, err = run(capsys, *args, "--resume")  # no prompt = the family's default (none): differs
    assert code == 2 and "prompt" in err
    code, _, err = run(capsys, *args, "--resume", "--prompt", PREFIX)
    assert code == 0, err
    assert len(out.read_text().splitlines()) == len(paths)


def test_family_defaults_fill_the_meta(capsys, blip: Path, folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "caps.jsonl"
    assert run(capsys, "caption", str(folder), "--model", str(blip), "--format", "jsonl",
               "-o", str(out), "-q")[0] == 0
    generation = json.loads((tmp_path / "caps.jsonl.meta.json").read_text())["generation"]
    assert (generation["num_beams"], generation["max_new_tokens"], generation["prompt"]) == (1, 30, None)


def test_a_prompt_for_vit_gpt2_is_a_usage_error(capsys, tiny_model_dir: Path, folder: Path) -> None:
    code, _, err = run(capsys, "caption", str(folder), "--model", str(tiny_model_dir), "--prompt", "x")
    assert code == 2 and "takes no prompt" in err


def test_remote_code_checkpoint_exits_2_naming_the_flag(capsys, blip: Path, folder: Path,
                                                        tmp_path: Path) -> None:
    model = tmp_path / "remote"
    shutil.copytree(blip, model)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "auto_map": {"AutoModel": "m.M"}}))
    code, _, err = run(capsys, "caption", str(folder), "--model", str(model))
    assert code == 2 and "--trust-remote-code" in err and "Traceback" not in err


def test_eval_captions_a_split_with_the_family(capsys, blip: Path, tiny_coco_dir: Path) -> None:
    code, out, err = run(capsys, "eval", "--data", str(tiny_coco_dir), "--split", "val2017",
                         "--model", str(blip), "--max-new-tokens", "4", "--output-format", "json", "-q")
    assert code == 0, err
    assert json.loads(out)["images"] == 50


def test_models_lists_every_family(capsys) -> None:
    code, out, _ = run(capsys, "models")
    assert code == 0
    for family in FAMILIES:
        assert family.name in out and family.suggested[0].id in out
    code, out, _ = run(capsys, "models", "--json")
    rows = json.loads(out)["captioners"]
    assert {r["family"] for r in rows} == {f.name for f in FAMILIES}
    florence = next(r for r in rows if r["family"] == "florence2")
    assert florence["default_prompt"] == "<CAPTION>" and "<OCR>" in florence["prompts"]
    assert all(r["licence"] and r["parameters"] for r in rows)
