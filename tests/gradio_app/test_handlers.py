"""Handler logic without a server: settings mapping, errors shown in the page, the model bar."""

from __future__ import annotations

import time
from pathlib import Path

import gradio as gr
import pytest

from gradio_app import handlers
from gradio_app.app import build_app
from gradio_app.config import AppConfig
from gradio_app.services import Services

GREEDY = ("Greedy", 4, 15, 1.0, 1.0, -1)


def test_generation_panel_maps_to_core_keywords() -> None:
    assert handlers.generation_kwargs("Beam search", 4, 15, 1.0, 1.0, -1) == {
        "max_new_tokens": 15, "num_beams": 4, "do_sample": False}
    assert handlers.generation_kwargs("Greedy", 4, 10, 1.0, 1.0, -1) == {
        "max_new_tokens": 10, "num_beams": 1, "do_sample": False}
    assert handlers.generation_kwargs("Sampling", 4, 10, 0.7, 0.9, 3) == {
        "max_new_tokens": 10, "num_beams": 1, "do_sample": True, "temperature": 0.7, "top_p": 0.9,
        "seed": 3}
    assert "seed" not in handlers.generation_kwargs("Sampling", 4, 10, 0.7, 0.9, -1)


def test_unloadable_model_gives_fix_text_at_once_until_retry(tmp_path: Path, sample_images: list[Path]) -> None:
    config = AppConfig(model=str(tmp_path / "no-such-model"), device="cpu")
    services = Services(config)
    assert build_app(config, services) is not None  # building does not load the model
    assert services.model.state.status == "idle"
    caption, page, slot = handlers.caption(services, api=False)(str(sample_images[0]), *GREEDY)
    assert caption == "" and 'class="i2t-error"' in page and "does not exist" in page
    assert slot is not None  # a model failure leaves the good image in its slot
    assert services.model.attempts == 1
    for _ in range(3):  # the failure is remembered: answered without another attempt
        with pytest.raises(gr.Error, match="does not exist"):
            handlers.caption(services, api=True)(str(sample_images[0]), *GREEDY)
    assert services.model.attempts == 1
    bar, retry, _timer = handlers.model_status(services)
    assert "could not be loaded" in bar and "does not exist" in bar and retry["visible"] is True
    handlers.retry_model(services)
    deadline = time.monotonic() + 30
    while services.model.state.status == "loading" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert services.model.attempts == 2 and services.model.state.status == "failed"


def test_no_image_and_bad_upload_are_errors(tiny_model_dir: Path, sample_images: list[Path], tmp_path: Path) -> None:
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    services = Services(AppConfig(model=str(tiny_model_dir), device="cpu"))
    with pytest.raises(gr.Error, match="no image"):
        handlers.caption(services, api=True)(None, *GREEDY)
    caption, page, slot = handlers.caption(services, api=False)(str(bad), *GREEDY)
    assert caption == "" and slot is None  # the unusable upload leaves the image slot
    assert "notes.jpg: not a supported image (expected JPEG, PNG, WebP, GIF, BMP or TIFF)" in page
    good, page, slot = handlers.caption(services, api=False)(str(sample_images[0]), *GREEDY)
    assert good and page == "" and slot is not None


def test_allowed_paths_are_only_examples_and_index_images(tmp_path: Path) -> None:
    examples = tmp_path / "examples"
    examples.mkdir()
    assert Services(AppConfig(examples=examples)).allowed_paths() == [str(examples.resolve())]
    assert Services(AppConfig()).allowed_paths() == []


def test_similar_refuses_an_index_that_was_not_configured(tmp_path: Path) -> None:
    answer = handlers.similar(Services(AppConfig(indexes=(tmp_path / "idx",))))(None, 3, "/etc", None)
    assert answer["results"] == [] and "not one of the app's indexes" in answer["error"]


def test_similar_by_gallery_id_leaves_the_query_out(apps_data) -> None:  # type: ignore[no-untyped-def]
    from core.search import EmbeddingIndex

    services = Services(AppConfig(indexes=(apps_data.index,), device="cpu"))
    answer = handlers.similar(services)(None, 3, None, "g04")
    want = EmbeddingIndex.load(apps_data.index).find_similar("g04", k=3)
    assert answer["error"] is None and answer["query"] == "gallery image g04"
    assert [r["image_id"] for r in answer["results"]] == [w.image_id for w in want]
    assert "g04" not in [r["image_id"] for r in answer["results"]]
    items, rows, note = handlers.render_results(answer)
    assert len(items) == len(rows) == 3 and "gallery image g04" in note
    assert [r[1] for r in rows] == [str(w.image_id) for w in want]


def test_similar_on_an_index_of_tar_shards_shows_the_members(apps_data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Results without files (webdataset members) reach the gallery as images, not as dropped items."""
    from PIL import Image

    from tests.browser.support import tar_index

    services = Services(AppConfig(indexes=(tar_index(apps_data, tmp_path),), device="cpu"))
    answer = handlers.similar(services)(None, 3, None, "g04")
    assert answer["error"] is None and len(answer["results"]) == 3
    items, rows, _ = handlers.render_results(answer)
    assert len(items) == len(rows) == 3 and all(isinstance(picture, Image.Image) for picture, _ in items)
    picture, picked = handlers.pick(services, None, "g04")  # a picked image fills the query slot
    assert isinstance(picture, Image.Image) and picked == "g04"


def test_pick_list_is_bounded_and_filtered(apps_data) -> None:  # type: ignore[no-untyped-def]
    services = Services(AppConfig(indexes=(apps_data.index,), pick_limit=5))
    assert len(handlers.pick_choices(services, None)["choices"]) == 5
    assert handlers.pick_choices(services, None, "g07.png")["choices"][0][1] == "g07"
    # a picked gallery image becomes the query: its file in the query slot, its id remembered
    assert handlers.pick(services, None, "g07") == (str(apps_data.gallery / "g07.png"), "g07")


def test_allowed_paths_with_an_index_are_its_image_folder(apps_data) -> None:  # type: ignore[no-untyped-def]
    services = Services(AppConfig(indexes=(apps_data.index,), examples=apps_data.examples))
    assert services.allowed_paths() == sorted(
        [str(apps_data.gallery.resolve()), str(apps_data.examples.resolve())])


def test_unresolvable_hub_id_offline_fails_once_then_from_memory(sample_images: list[Path]) -> None:
    services = Services(AppConfig(model="nobody-here/no-such-captioner", device="cpu"))
    services.start()  # as at app start: the load runs in the background
    for _ in range(3):
        with pytest.raises(gr.Error, match="How to fix it"):
            handlers.caption(services, api=True)(str(sample_images[0]), *GREEDY)
    assert services.model.attempts == 1 and services.model.state.status == "failed"


def test_words_box_picked_query_and_run_warning_follow_the_index(apps_data) -> None:  # type: ignore[no-untyped-def]
    from core.workflows import NO_CAPTIONS

    services = Services(AppConfig(indexes=(apps_data.index, apps_data.collapsed), runs=(apps_data.run,)))
    assert handlers.words_box(services, None)["interactive"] is True
    box = handlers.words_box(services, str(apps_data.collapsed))
    assert box["interactive"] is False and box["info"] == NO_CAPTIONS
    words, picked, query = handlers.index_changed(services, str(apps_data.collapsed), "g03")
    assert words["interactive"] is False and picked is None and query is None  # a picked image goes with its index
    assert handlers.index_changed(services, None, None)[2] == gr.skip()  # an upload stays
    # the Training run tab warns next to its sample retrievals when the run's index has collapsed
    healthy = handlers.run_view(services)(str(apps_data.run))
    collapsed = handlers.run_view(Services(AppConfig(indexes=(apps_data.collapsed,), runs=(apps_data.run,))))(
        str(apps_data.run))
    assert healthy[3] == "" and healthy[4] and collapsed[4]
    assert "embeddings have collapsed" in collapsed[3] and 'class="i2t-warn"' in collapsed[3]
