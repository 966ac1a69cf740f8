"""ModelChoices keyed by (model, precision), at most MAX_LOADED at once, the LRU one dropped and
forgotten from core.get_captioner's cache (fake loaders: no real model)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from core import ConfigError, ModelUnavailableError
from core.captioning import api
from core.workflows import MAX_LOADED, ModelChoices, ModelLoader


class FakeCaptioner:
    def __init__(self, model: str | None, dtype: str | None) -> None:
        self.spec = f"{model}:{dtype}"


def check(model: str) -> None:
    if model == "unreadable":
        raise ModelUnavailableError("unreadable: no config.json")


def fake_choices(max_loaded: int = MAX_LOADED) -> tuple[ModelChoices, list[Any], list[Any]]:
    loads: list[tuple[str | None, str | None]] = []
    forgotten: list[Any] = []

    def load(model: str | None, device: str, dtype: str | None = None, **_: Any) -> Any:  # progress: unused
        loads.append((model, dtype))
        return FakeCaptioner(model, dtype)

    choices = ModelChoices("default", "cpu", make=lambda *a, **k: ModelLoader(*a, load=load, **k),
                           max_loaded=max_loaded, forget=forgotten.append, check=check)
    return choices, loads, forgotten


def test_loaders_are_keyed_by_model_and_precision() -> None:
    choices, loads, _ = fake_choices()
    assert choices.loader() is choices.loader("float32") is choices.loader(model="default")
    assert choices.loader(model=" ") is choices.loader() and loads == []  # blank = the default; not started
    blip = choices.loader(model="blip")
    assert blip.get().spec == "blip:None" and loads == [("blip", None)]  # started in the background
    assert choices.loader("float32", model="blip") is blip and choices.loader(model="blip") is not choices.loader()
    assert choices.keys() == [("blip", "float32"), ("default", "float32")]  # least recently used first
    with pytest.raises(ConfigError, match="precision 'fp8'"):
        choices.loader("fp8", model="blip")


def test_a_third_choice_drops_the_least_recently_used_and_forgets_its_captioner() -> None:
    choices, loads, forgotten = fake_choices()
    default = choices.loader()
    first = default.get()
    int8 = choices.loader("int8")
    int8.get()
    choices.loader()  # the default is now the most recently used
    blip = choices.loader(model="blip")  # a third: the int8 default goes
    blip.get()
    assert choices.keys() == [("default", "float32"), ("blip", "float32")]
    assert [c.spec for c in forgotten] == ["default:int8"]
    again = choices.loader("int8")  # chosen again: a new loader that loads again; now the default goes
    assert again is not int8 and again.get().spec == "default:int8"
    assert loads == [("default", None), ("default", "int8"), ("blip", None), ("default", "int8")]
    assert forgotten[1] is first and choices.keys() == [("blip", "float32"), ("default", "int8")]


def test_one_not_loaded_yet_is_dropped_without_forgetting_and_bounds_are_checked() -> None:
    choices, loads, forgotten = fake_choices(max_loaded=1)
    choices.loader(model="blip").get()  # the never-started default goes: nothing to forget
    assert forgotten == [] and choices.keys() == [("blip", "float32")]
    with pytest.raises(ModelUnavailableError, match="no config.json"):  # checked before anything is dropped
        choices.loader(model="unreadable")
    assert choices.keys() == [("blip", "float32")] and loads == [("blip", None)]
    with pytest.raises(ConfigError, match="max_loaded=0"):
        ModelChoices("m", max_loaded=0)


def test_one_dropped_while_loading_is_forgotten_once_its_load_ends() -> None:
    release, forgotten = threading.Event(), []

    def slow_load(model: str | None, device: str, dtype: str | None = None, **_: Any) -> Any:
        release.wait(10)
        return FakeCaptioner(model, dtype)

    choices = ModelChoices("default", "cpu", make=lambda *a, **k: ModelLoader(*a, load=slow_load, **k),
                           max_loaded=1, forget=forgotten.append, check=check)
    blip = choices.loader(model="blip")  # starts loading; the default (never started) goes
    assert blip.state.status == "loading"
    choices.loader(model="git")  # blip is dropped while its load is still running
    assert forgotten == []  # nothing loaded yet to forget
    release.set()
    captioner = blip.get()
    assert captioner.spec == "blip:None"
    for _ in range(100):  # get() returns as the load ends; the forget follows in the same thread
        if forgotten:
            break
        threading.Event().wait(0.01)
    assert [c.spec for c in forgotten] == ["blip:None"]


def test_forget_captioner_drops_it_from_the_module_cache() -> None:
    fake: Any = object()
    api._CACHE[("fake", "cpu", "float32", False)] = fake
    try:
        assert api.forget_captioner(fake) is True
        assert fake not in api._CACHE.values() and api.forget_captioner(fake) is False
    finally:
        api._CACHE.pop(("fake", "cpu", "float32", False), None)
