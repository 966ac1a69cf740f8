"""Every prompted family through one `core.Captioner`, against plain Hugging Face ``generate``.

Each family's tiny random model (tests/fixtures/tiny_families.py) is loaded by path, the way a
hub checkpoint is. The references build their inputs the way the model cards do, one image at a
time, with nothing from the project.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

import core
from core.captioning.families import FAMILIES, FLORENCE_TASKS, family_for_config
from core.captioning.generation import GenerationOptions, clean_caption
from core.captioning.prompted import trim_row
from tests.fixtures.tiny_families import family_images, tiny_family_model

FAMILY_OF = {"blip": "blip", "git": "git", "florence2": "florence2", "qwen2_vl": "qwen2-vl",
             "blip_2": "blip-2", "paligemma": "paligemma", "llava": "llava", "smolvlm": "smolvlm", "gemma3": "gemma3"}
ECHOES_PROMPT = ("qwen2_vl", "llava", "smolvlm", "blip_2", "paligemma", "gemma3")  # decoder-only: output starts with the input
PREFIX = "a photo of"
GREEDY = {"num_beams": 1, "max_new_tokens": 8}
BEAMS = {"num_beams": 3, "max_new_tokens": 6}
_LOADED: dict[str, core.Captioner] = {}
_PLAIN: dict[str, tuple[Any, Any]] = {}  # family -> (plain transformers model, processor)


def captioner(name: str) -> core.Captioner:
    """One loaded captioner per family for the whole module."""
    if name not in _LOADED:
        _LOADED[name] = core.Captioner(str(tiny_family_model(name)), device="cpu", dtype="float32")
    return _LOADED[name]


def _reference(name: str, prompt: str | None, settings: dict[str, Any]) -> list[list[int]]:
    """Per image: plain ``model.generate`` on model-card inputs, cut to the caption's tokens."""
    if name not in _PLAIN:
        _PLAIN[name] = _load_plain(name)
    model, processor = _PLAIN[name]
    tok = processor.tokenizer
    out = []
    for image in family_images():
        inputs = _model_card_inputs(name, processor, image, prompt)
        with torch.no_grad():  # the same generate keywords (beams add early_stopping=True)
            ids = model.generate(**inputs, **GenerationOptions.from_kwargs(**settings).to_hf_kwargs())[0]
        if name in ECHOES_PROMPT:
            ids = ids[inputs["input_ids"].shape[1]:]
        out.append(trim_row(ids.tolist(), model.generation_config.pad_token_id, set(tok.all_special_ids)))
    return out


def _load_plain(name: str, dtype: torch.dtype = torch.float32) -> tuple[Any, Any]:
    import transformers

    folder = tiny_family_model(name)
    model_class = {"blip": "BlipForConditionalGeneration", "git": "GitForCausalLM",
                   "florence2": "Florence2ForConditionalGeneration",
                   "qwen2_vl": "Qwen2VLForConditionalGeneration",
                   "blip_2": "Blip2ForConditionalGeneration",
                   "paligemma": "PaliGemmaForConditionalGeneration",
                   "llava": "LlavaForConditionalGeneration",
                   "smolvlm": "SmolVLMForConditionalGeneration",
                   "gemma3": "Gemma3ForConditionalGeneration"}[name]
    model = getattr(transformers, model_class).from_pretrained(folder, dtype=dtype).eval()
    return model, transformers.AutoProcessor.from_pretrained(folder)


def _model_card_inputs(name: str, processor: Any, image: Any, prompt: str | None) -> Any:
    """One image's inputs, built as each model card shows (nothing from the project)."""
    tok = processor.tokenizer
    if name == "blip":
        inputs = processor(images=image, text=prompt, return_tensors="pt") if prompt else \
            processor(images=image, return_tensors="pt")
    elif name == "git":
        inputs = processor(images=image, return_tensors="pt")
        if prompt:
            ids = [tok.cls_token_id, *tok(prompt, add_special_tokens=False).input_ids]
            inputs["input_ids"] = torch.tensor([ids])
    elif name in ("florence2", "paligemma"):
        inputs = processor(text=prompt, images=image, return_tensors="pt")
    elif name == "blip_2":  # no prompt: "" (a real OPT tokenizer makes it the BOS generate starts with)
        inputs = processor(images=image, text=prompt or "", return_tensors="pt")
    else:
        turn = [{"role": "user", "content": [{"type": "image", "image": image},
                                             {"type": "text", "text": prompt}]}]
        inputs = processor.apply_chat_template(turn, add_generation_prompt=True, tokenize=True,
                                               return_dict=True, return_tensors="pt")
    return inputs


CASES = [
    ("blip", None, GREEDY), ("blip", None, BEAMS), ("blip", PREFIX, GREEDY), ("blip", PREFIX, BEAMS),
    ("git", None, GREEDY), ("git", None, BEAMS), ("git", PREFIX, GREEDY),
    ("florence2", "<CAPTION>", GREEDY), ("florence2", "<CAPTION>", BEAMS),
    ("florence2", "<DETAILED_CAPTION>", GREEDY),
    ("qwen2_vl", "Describe this image in one sentence.", GREEDY), ("qwen2_vl", "What is it?", GREEDY),
    ("blip_2", None, GREEDY), ("blip_2", "Question: what is it? Answer:", GREEDY),
    ("paligemma", "caption en", GREEDY), ("paligemma", "caption en", BEAMS),
    ("llava", "Describe this image in one sentence.", GREEDY),
    ("smolvlm", "Describe this image in one sentence.", GREEDY),
    ("gemma3", "Describe this image in one sentence.", GREEDY), ("gemma3", "What is it?", BEAMS),
]


@pytest.mark.parametrize(("name", "prompt", "settings"), CASES)
def test_batch_equals_plain_generate_per_image(name: str, prompt: str | None, settings: dict) -> None:
    """Six images of different sizes in one batch = each alone through plain generate, token for
    token (float32, CPU)."""
    cap = captioner(name)
    reference = _reference(name, prompt, settings)
    ours = cap.prompted.generated_ids(family_images(), cap.options(prompt=prompt, **settings))
    assert ours == reference
    texts = [clean_caption(t) for t in cap.tokenizer.batch_decode(reference, skip_special_tokens=True)]
    assert cap.caption_batch(family_images(), batch_size=6, prompt=prompt, **settings) == texts
    assert len({tuple(r) for r in reference}) > 1, "the tiny model should caption different images differently"


def test_family_comes_from_config_model_type() -> None:
    for name, family in FAMILY_OF.items():
        assert captioner(name).family.name == family
        assert captioner(name).info["family"] == family


@pytest.mark.parametrize("name", ["blip", "git"])
def test_prefix_prompt_begins_the_caption(name: str) -> None:
    for caption in captioner(name).caption_batch(family_images()[:3], prompt=PREFIX):
        assert caption.startswith(PREFIX + " "), caption


def test_defaults_are_greedy_with_a_token_budget() -> None:
    blip = captioner("blip").options()
    assert (blip.num_beams, blip.max_new_tokens, blip.max_length, blip.prompt) == (1, 30, None, None)
    florence = captioner("florence2")
    assert florence.options().prompt == "<CAPTION>"
    for task, budget in FLORENCE_TASKS.items():
        assert florence.options(prompt=task).max_new_tokens == budget
    chat = captioner("qwen2_vl").options()
    assert chat.prompt == "Describe this image in one sentence." and chat.max_new_tokens == 30
    # A caller's max_length replaces the family's max_new_tokens (one length limit, the caller's).
    assert captioner("git").options(max_length=20).to_hf_kwargs()["max_length"] == 20
    assert "max_new_tokens" not in captioner("git").options(max_length=20).to_hf_kwargs()


@pytest.mark.parametrize("name", ECHOES_PROMPT)
def test_decoder_only_caption_is_only_the_answer(name: str) -> None:
    cap = captioner(name)
    rows = cap.prompted.generated_ids(family_images()[:2], cap.options(max_new_tokens=5))
    assert all(0 < len(r) <= 5 for r in rows), rows  # the prompt's tokens (16 to 60-odd) are cut away
    assert cap.tokenizer.padding_side == "left"


def test_paligemma_default_prompt() -> None:
    assert captioner("paligemma").options().prompt == "caption en"
    assert captioner("llava").options().prompt == "Describe this image in one sentence."


def test_florence_takes_only_its_caption_tasks() -> None:
    with pytest.raises(core.ConfigError, match="<CAPTION>.*<OCR>"):
        captioner("florence2").caption(family_images()[0], prompt="<OD>")
    assert isinstance(captioner("florence2").caption(family_images()[0], prompt="<OCR>", max_new_tokens=4), str)


def test_vit_gpt2_takes_no_prompt(tiny_model_dir: Path) -> None:
    vit = core.Captioner(str(tiny_model_dir), device="cpu", dtype="float32")
    assert vit.family.name == "vit-gpt2" and vit.options().num_beams == 4
    with pytest.raises(core.ConfigError, match="takes no prompt"):
        vit.caption(family_images()[0], prompt="a photo of")


def test_empty_prompt_is_refused() -> None:
    with pytest.raises(core.ConfigError, match="prompt"):
        captioner("blip").caption(family_images()[0], prompt="  ")


@pytest.mark.parametrize("name", sorted(FAMILY_OF))
def test_bfloat16_captions_as_plain_bfloat16_generate(name: str) -> None:
    """dtype bfloat16 loads the family in bfloat16 and captions each image as plain ``generate``
    loaded in bfloat16, as model cards show (docs/models.md: bf16 yes for every family)."""
    cap = core.Captioner(str(tiny_family_model(name)), device="cpu", dtype="bfloat16")
    assert cap.precision == "bfloat16" and next(cap.model.parameters()).dtype == torch.bfloat16
    model, processor = _load_plain(name, torch.bfloat16)
    prompt = cap.options().prompt
    for image in family_images()[:3]:
        inputs = _model_card_inputs(name, processor, image, prompt)
        inputs = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in inputs.items()}
        with torch.no_grad():
            ids = model.generate(**inputs, **cap.options(max_new_tokens=6).to_hf_kwargs())[0]
        if name in ECHOES_PROMPT:
            ids = ids[inputs["input_ids"].shape[1]:]
        want = trim_row(ids.tolist(), model.generation_config.pad_token_id, set(processor.tokenizer.all_special_ids))
        assert cap.prompted.generated_ids([image], cap.options(max_new_tokens=6)) == [want]


def test_int8_is_refused_outside_vit_gpt2() -> None:
    with pytest.raises(core.ConfigError, match="int8 is for ViT-GPT2"):
        core.Captioner(str(tiny_family_model("blip")), device="cpu", dtype="int8")


def test_unsupported_model_type_names_the_families(tmp_path: Path) -> None:
    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (folder / "model.safetensors").write_bytes(b"")
    with pytest.raises(core.ModelUnavailableError) as info:
        core.Captioner(str(folder), device="cpu")
    for family in FAMILIES:
        assert family.name in str(info.value)
    assert "'bert'" in str(info.value)


def test_remote_code_checkpoint_is_refused_with_the_native_alternative(tmp_path: Path) -> None:
    folder = tmp_path / "Florence-2-base"
    shutil.copytree(tiny_family_model("florence2"), folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_florence2.Florence2ForConditionalGeneration"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(core.ModelUnavailableError) as info:
        core.Captioner(str(folder), device="cpu")
    msg = str(info.value)
    assert "florence-community/Florence-2-base" in msg and "--trust-remote-code" in msg
    assert "trust_remote_code=True" in msg
    family = family_for_config(config, source="x", trust_remote_code=True)
    assert family.name == "remote:florence2" and family.model_class == "AutoModelForCausalLM"


def test_chat_model_without_a_template_is_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "no-template"
    shutil.copytree(tiny_family_model("qwen2_vl"), folder)
    for template in folder.glob("chat_template.*"):
        template.unlink()
    with pytest.raises(core.ModelUnavailableError, match="no chat template"):
        core.Captioner(str(folder), device="cpu")
