"""Generation options: defaults, validation, translation to Hugging Face keywords."""

from __future__ import annotations

import pytest

from core.captioning.generation import GenerationOptions, clean_caption


def test_defaults_match_model_card() -> None:
    kw = GenerationOptions().to_hf_kwargs()
    assert kw == {"num_beams": 4, "do_sample": False, "max_length": 16, "early_stopping": True}


def test_max_new_tokens_replaces_max_length() -> None:
    kw = GenerationOptions.from_kwargs(max_new_tokens=10, num_beams=1).to_hf_kwargs()
    assert kw["max_new_tokens"] == 10 and "max_length" not in kw


def test_sampling_and_repetition_keywords() -> None:
    kw = GenerationOptions.from_kwargs(do_sample=True, num_beams=1, temperature=0.7, top_p=0.9,
                                       no_repeat_ngram_size=3, repetition_penalty=1.2).to_hf_kwargs()
    assert kw["temperature"] == 0.7 and kw["top_p"] == 0.9 and kw["do_sample"] is True
    assert kw["no_repeat_ngram_size"] == 3 and kw["repetition_penalty"] == 1.2
    assert "temperature" not in GenerationOptions(num_beams=1).to_hf_kwargs()


@pytest.mark.parametrize("bad, match", [
    ({"num_beams": 0}, "num_beams"),
    ({"max_new_tokens": 0}, "max_new_tokens"),
    ({"max_length": 1}, "max_length"),
    ({"temperature": 0}, "temperature"),
    ({"top_p": 1.5}, "top_p"),
    ({"no_repeat_ngram_size": -1}, "no_repeat_ngram_size"),
    ({"repetition_penalty": 0}, "repetition_penalty"),
])
def test_validation(bad: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        GenerationOptions.from_kwargs(**bad)


def test_unknown_keyword_is_rejected() -> None:
    with pytest.raises(TypeError, match="beam_width"):
        GenerationOptions.from_kwargs(beam_width=2)


def test_clean_caption() -> None:
    assert clean_caption("  a  dog\n on\ta couch ") == "a dog on a couch"
