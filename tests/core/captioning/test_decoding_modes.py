"""The decoding panel shared by the CLI and both apps maps onto generation keywords."""

from __future__ import annotations

import pytest

from core.captioning.generation import DECODING_MODES, GenerationOptions, decoding_kwargs


def test_modes_and_labels() -> None:
    assert decoding_kwargs("Beam search", num_beams=3) == {"num_beams": 3, "do_sample": False}
    assert decoding_kwargs("greedy", num_beams=3, max_new_tokens=9) == {
        "num_beams": 1, "do_sample": False, "max_new_tokens": 9}
    assert decoding_kwargs("Sampling", temperature=0.7, top_p=0.9, seed=3) == {
        "num_beams": 1, "do_sample": True, "temperature": 0.7, "top_p": 0.9, "seed": 3}
    assert "seed" not in decoding_kwargs("sample", seed=-1)
    for label in DECODING_MODES:
        GenerationOptions.from_kwargs(**decoding_kwargs(label))  # always valid options


def test_unknown_mode() -> None:
    with pytest.raises(ValueError, match="decoding mode"):
        decoding_kwargs("nucleus")
