"""Handler logic without a server: settings mapping, errors shown in the page, lazy model."""

from __future__ import annotations

from pathlib import Path

from gradio_app import handlers
from gradio_app.app import build_app
from gradio_app.config import AppConfig
from gradio_app.services import ERROR_PREFIX, Services


def test_generation_panel_maps_to_core_keywords() -> None:
    assert handlers.generation_kwargs("Beam search", 4, 15, 1.0, 1.0, -1) == {
        "max_new_tokens": 15, "num_beams": 4, "do_sample": False}
    assert handlers.generation_kwargs("Greedy", 4, 10, 1.0, 1.0, -1) == {
        "max_new_tokens": 10, "num_beams": 1, "do_sample": False}
    assert handlers.generation_kwargs("Sampling", 4, 10, 0.7, 0.9, 3) == {
        "max_new_tokens": 10, "num_beams": 1, "do_sample": True, "temperature": 0.7, "top_p": 0.9,
        "seed": 3}
    assert "seed" not in handlers.generation_kwargs("Sampling", 4, 10, 0.7, 0.9, -1)


def test_unloadable_model_gives_fix_text_and_app_still_builds(tmp_path: Path, sample_images: list[Path]) -> None:
    config = AppConfig(model=str(tmp_path / "no-such-model"), device="cpu")
    services = Services(config)
    demo = build_app(config, services)  # building must not load the model
    assert demo is not None
    caption = handlers.caption_batch(services)
    (out,) = caption([str(sample_images[0]), None], ["Beam search"] * 2, [4] * 2, [15] * 2,
                     [1.0] * 2, [1.0] * 2, [-1] * 2)
    assert out[0].startswith(ERROR_PREFIX) and "does not exist" in out[0]
    assert out[1].startswith(ERROR_PREFIX) and "no image" in out[1]
    page, cleared = handlers.caption_status(out[0])
    assert 'class="i2t-error"' in page and "does not exist" in page
    assert cleared == ""


def test_bad_upload_is_reported_per_item(tiny_model_dir: Path, sample_images: list[Path], tmp_path: Path) -> None:
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    services = Services(AppConfig(model=str(tiny_model_dir), device="cpu"))
    (out,) = handlers.caption_batch(services)(
        [str(bad), str(sample_images[0])], ["Greedy"] * 2, [4] * 2, [15] * 2, [1.0] * 2,
        [1.0] * 2, [-1] * 2)
    assert out[0] == ERROR_PREFIX + "notes.jpg: not a supported image (expected JPEG, PNG, WebP, GIF, BMP or TIFF)"
    assert not out[1].startswith(ERROR_PREFIX) and out[1]


def test_allowed_paths_are_only_examples_and_index_images(tmp_path: Path) -> None:
    examples = tmp_path / "examples"
    examples.mkdir()
    services = Services(AppConfig(examples=examples))
    assert services.allowed_paths() == [str(examples.resolve())]
    assert Services(AppConfig()).allowed_paths() == []


def test_similar_refuses_an_index_that_was_not_configured(tmp_path: Path) -> None:
    services = Services(AppConfig(indexes=(tmp_path / "idx",)))
    answer = handlers.similar(services)(None, 3, "/etc", None)
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


def test_allowed_paths_with_an_index_are_its_image_folder(apps_data) -> None:  # type: ignore[no-untyped-def]
    services = Services(AppConfig(indexes=(apps_data.index,), examples=apps_data.examples))
    assert services.allowed_paths() == sorted(
        [str(apps_data.gallery.resolve()), str(apps_data.examples.resolve())])
