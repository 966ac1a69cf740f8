"""The Streamlit pages' logic through ``streamlit.testing.v1.AppTest`` (no browser, no server)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import core
from core.captioning.captioner import Captioner
from tests.browser.support import AppData
from tests.streamlit_app.conftest import APP

pytestmark = pytest.mark.slow


@pytest.fixture()
def at(app_env: AppData) -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=120)
    app.run()
    assert not app.exception, app.exception
    return app


def _upload(at: AppTest, key: str, path: Path, mime: str = "image/png") -> None:
    at.file_uploader(key=key).set_value((path.name, path.read_bytes(), mime))
    at.run()
    assert not at.exception, at.exception


def test_page_shows_four_tabs(at: AppTest) -> None:
    assert [t.label for t in at.tabs] == ["Caption", "Batch", "Similar images", "Training run"]
    assert any(i.value.startswith("Upload an image") for i in at.info)
    # the model loads in the background from the first run; the bar says so
    bar = [i.value for i in at.info] + [c.value for c in at.caption]
    assert any(v.startswith(("Loading the captioning model", "Model ready")) for v in bar), bar


def test_caption_shown_and_kept_in_session_state(at: AppTest, app_env: AppData, tiny_model_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    want = core.caption(app_env.good, model=str(tiny_model_dir), device="cpu", max_new_tokens=15)
    calls: list[int] = []
    original = Captioner.caption

    def counting(self: Captioner, image: object, **generation: object) -> str:
        calls.append(1)
        return original(self, image, **generation)

    monkeypatch.setattr(Captioner, "caption", counting)
    _upload(at, "caption-upload", app_env.good)
    assert at.session_state["caption_result"]["caption"] == want
    assert any(want in m.value for m in at.markdown)
    assert len(calls) == 1
    at.run()  # a rerun (any widget change elsewhere) reuses the stored result
    at.tabs[1].button(key="batch-run")  # touching another tab does not recompute either
    at.run()
    assert len(calls) == 1
    assert at.session_state["caption_result"]["caption"] == want
    # the nearest gallery images come with it (an index is configured); the query is not a gallery image
    assert len(at.session_state["caption_result"]["neighbours"].hits) == 4
    assert at.session_state["caption_result"]["neighbours"].same is None


def test_settings_change_captions_only_on_the_caption_button(at: AppTest, app_env: AppData, tiny_model_dir: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """As in the Gradio app: an upload captions at once; new settings wait for Caption."""
    want = core.caption(app_env.good, model=str(tiny_model_dir), device="cpu", max_new_tokens=2)
    calls: list[dict[str, object]] = []
    original = Captioner.caption

    def recording(self: Captioner, image: object, **generation: object) -> str:
        calls.append(generation)
        return original(self, image, **generation)

    monkeypatch.setattr(Captioner, "caption", recording)
    _upload(at, "caption-upload", app_env.good)
    first = at.session_state["caption_result"]["caption"]
    at.slider(key="caption-max-tokens").set_value(2)
    at.run()
    assert len(calls) == 1 and at.session_state["caption_result"]["caption"] == first
    at.button(key="caption-run").click()
    at.run()
    assert len(calls) == 2 and calls[1]["max_new_tokens"] == 2
    assert at.session_state["caption_result"]["caption"] == want != first


def test_int8_precision_captions_with_the_int8_captioner(at: AppTest, app_env: AppData, tiny_model_dir: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    want = core.caption(app_env.good, model=str(tiny_model_dir), device="cpu", dtype="int8", max_new_tokens=15)
    used: list[str] = []
    original = Captioner.caption

    def recording(self: Captioner, image: object, **generation: object) -> str:
        used.append(self.precision)
        return original(self, image, **generation)

    monkeypatch.setattr(Captioner, "caption", recording)
    at.radio(key="caption-precision").set_value("int8")
    _upload(at, "caption-upload", app_env.good)
    assert used == ["int8"]
    assert at.session_state["caption_result"]["caption"] == want
    assert any(want in m.value for m in at.markdown)


def test_bad_upload_shows_error(at: AppTest, app_env: AppData) -> None:
    _upload(at, "caption-upload", app_env.not_image, "image/jpeg")
    assert "not-an-image.jpg" in at.error[0].value and "not a supported image" in at.error[0].value
    _upload(at, "caption-upload", app_env.too_many_pixels)
    assert "over the limit of 1,000,000" in at.error[0].value
    _upload(at, "caption-upload", app_env.good)  # the page recovers
    assert not at.error and at.session_state["caption_result"]["caption"]


def test_example_button_captions_the_example(at: AppTest, app_env: AppData) -> None:
    at.button(key="example-1").click()
    at.run()
    assert at.session_state["caption-example"].endswith("example1.png")
    assert at.session_state["caption_result"]["caption"]


def test_model_that_cannot_load_shows_the_fix(app_env: AppData, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty = tmp_path / "empty-model"
    empty.mkdir()
    monkeypatch.setenv("IMG2TEXT_MODEL", str(empty))
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    _upload(at, "caption-upload", app_env.good)
    assert at.error[-1].value == "The captioning model could not be loaded."
    assert "How to fix it" in at.code[-1].value and " -- --model " in at.code[-1].value
    assert any(e.value.startswith("The captioning model could not be loaded (attempt 1)") for e in at.error)
    # the rest of the app stays usable
    at.selectbox(key="similar-id").set_value("g02")
    at.run()
    at.button(key="similar-run").click()
    at.run()
    assert at.session_state["similar_result"][1].hits


def test_batch_table_and_downloads(at: AppTest, app_env: AppData, tiny_model_dir: Path) -> None:
    files = [app_env.gallery / "g00.png", app_env.not_image, app_env.gallery / "g01.png"]
    at.file_uploader(key="batch-upload").set_value(
        [(p.name, p.read_bytes(), "image/png") for p in files])
    at.run()
    at.button(key="batch-run").click()
    at.run()
    assert not at.exception, at.exception
    rows = at.session_state["batch_result"]["rows"]
    records = [r.record for r in rows]
    assert [r.path for r in records] == ["g00.png", "not-an-image.jpg", "g01.png"]
    want = core.caption(files[0], model=str(tiny_model_dir), device="cpu", max_new_tokens=15)
    assert records[0].caption == want and records[0].ok
    assert not records[1].ok and "not a supported image" in records[1].error
    assert rows[0].thumbnail.startswith("data:image/png;base64,") and rows[1].thumbnail is None
    assert "2 captioned, 1 failed" in [c.value for c in at.caption]
    labels = [d.proto.label for d in at.get("download_button")]
    assert labels == ["Download CSV", "Download JSONL", "Download caption files (.zip)"]


def test_similar_by_gallery_image(at: AppTest, app_env: AppData) -> None:
    from core.search import EmbeddingIndex

    index = EmbeddingIndex.load(app_env.index)
    at.text_input(key="similar-find").input("g04")
    at.run()
    assert at.selectbox(key="similar-id").options == [f"g04 · g04.png · {index.captions[4][0]}"]
    at.selectbox(key="similar-id").set_value("g04")
    at.slider(key="similar-k").set_value(3)
    at.run()
    at.button(key="similar-run").click()
    at.run()
    answer = at.session_state["similar_result"][1]
    assert answer.hits == index.find_similar("g04", k=3)  # the picked image is left out of its results
    assert "Top 3 for gallery image g04 · exact search." in [c.value for c in at.caption]


def test_similar_on_an_index_of_tar_shards_shows_the_members(app_env: AppData, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Results without files (webdataset members) are shown from their shards, not left blank."""
    from tests.browser.support import tar_index

    monkeypatch.setenv("IMG2TEXT_INDEX", str(tar_index(app_env, tmp_path)))
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    at.text_input(key="similar-find").input("g04")
    at.run()
    at.selectbox(key="similar-id").set_value("g04")
    at.slider(key="similar-k").set_value(3)
    at.run()
    at.button(key="similar-run").click()
    at.run()
    assert not at.exception, at.exception
    assert len(at.session_state["similar_result"][1].hits) == 3
    similar_tab = at.tabs[2]
    shown = [im for e in similar_tab.get("image") for im in e.proto.imgs if not im.caption.startswith("Query:")]
    assert any(im.caption.startswith("Query:") for e in similar_tab.get("image") for im in e.proto.imgs)
    assert len(shown) == 3


def query_captions(at: AppTest) -> list[str]:
    """Captions of the images shown as the query."""
    return [im.caption for e in at.get("image") for im in e.proto.imgs if im.caption.startswith("Query:")]


def test_picked_image_is_the_query_until_a_new_upload(at: AppTest, app_env: AppData) -> None:
    from core.search import EmbeddingIndex

    index = EmbeddingIndex.load(app_env.index)
    _upload(at, "similar-upload", app_env.gallery / "g03.png")
    at.button(key="similar-run").click()
    at.run()
    answer = at.session_state["similar_result"][1]
    want = index.find_similar(core.load_image(app_env.gallery / "g03.png"), k=6)
    assert answer.same.image_id == "g03" == want[0].image_id
    assert [h.image_id for h in answer.hits] == [w.image_id for w in want[1:]]
    assert any("g03" in c.value and "not counted" in c.value for c in at.caption)
    # picking a gallery image makes it the query, shown in the query slot
    at.selectbox(key="similar-id").set_value("g05")
    at.run()
    assert query_captions(at) == ["Query: gallery image g05"]
    for k in (3, 4):  # Find similar, and again after k changed: the picked image each time
        at.slider(key="similar-k").set_value(k)
        at.run()
        at.button(key="similar-run").click()
        at.run()
        assert at.session_state["similar_result"][1].hits == index.find_similar("g05", k=k)
    # a new upload replaces it
    _upload(at, "similar-upload", app_env.good)
    assert query_captions(at) == []
    at.button(key="similar-run").click()
    at.run()
    answer = at.session_state["similar_result"][1]
    assert answer.query == "the uploaded image"
    assert answer.hits == index.find_similar(core.load_image(app_env.good), k=4)


def test_find_images_by_words(at: AppTest, app_env: AppData) -> None:
    from core.search import EmbeddingIndex

    index = EmbeddingIndex.load(app_env.index)
    words = " ".join(index.captions[4][0].split()[:3])
    at.text_input(key="similar-words").input(words)
    at.button(key="similar-words-run").click()
    at.run()
    answer = at.session_state["similar_result"][1]
    assert answer.hits and answer.hits == index.find_text(words, 5)
    assert f'Top {len(answer.hits)} for the words "{words}" · caption words, BM25 relevance.' in [
        c.value for c in at.caption]


def test_training_run_tab(at: AppTest) -> None:
    labels = [m.label for m in at.metric]
    assert labels[:3] == ["epochs", "loss", "pos_top1"]
    assert at.metric[0].value == "2"
    assert "Sample retrievals" in [m.value.strip("# ") for m in at.markdown]


def test_pick_list_is_bounded(at: AppTest) -> None:
    assert len(at.selectbox(key="similar-id").options) == 16  # the whole small gallery (limit 50)
    at.text_input(key="similar-find").input("square")
    at.run()
    assert 0 < len(at.selectbox(key="similar-id").options) < 16


HOSTILE = ["bomb-100000x100000.png", "text.jpg", "drawing.svg", "truncated.png", "strips-20000.tiff"]


def _interact(at: AppTest, kind: str) -> None:
    """One kind of interaction the Similar images tab offers, before an upload."""
    if kind == "pick a gallery image":
        at.selectbox(key="similar-id").set_value("g02")
    elif kind == "type in the find box":
        at.text_input(key="similar-find").input("g0")
    elif kind == "change k":
        at.slider(key="similar-k").set_value(3)
    elif kind == "find by words":
        at.text_input(key="similar-words").input("a")
        at.button(key="similar-words-run").click()
    at.run()
    assert not at.exception, at.exception


@pytest.mark.timeout(600)
@pytest.mark.parametrize("kind", ["none", "pick a gallery image", "type in the find box", "change k",
                                  "find by words"])
def test_every_image_input_refuses_the_hostile_corpus_after_each_interaction(at: AppTest, kind: str) -> None:
    """Issue 23 item 1, Streamlit side: each upload reaches core.load_image as bytes (Streamlit
    decodes nothing), whatever was done on the page before; the app names the file and the reason."""
    import re

    from tests.reliability.corpus import BY_NAME

    for name in HOSTILE:
        _interact(at, kind)
        at.file_uploader(key="similar-upload").set_value((name, BY_NAME[name].data, "image/png"))
        at.run()
        at.button(key="similar-run").click()
        at.run()
        assert not at.exception, at.exception
        error = at.session_state["similar_result"][1].error or ""
        assert error.startswith(name) and re.search(BY_NAME[name].expect, error), (kind, name, error)
        at.file_uploader(key="caption-upload").set_value((name, BY_NAME[name].data, "image/png"))
        at.run()
        message = " ".join(e.value for e in at.error)
        assert name in message and re.search(BY_NAME[name].expect, message), (kind, name, message)
    at.file_uploader(key="batch-upload").set_value([(n, BY_NAME[n].data, "image/png") for n in HOSTILE])
    at.run()
    at.button(key="batch-run").click()
    at.run()
    records = [r.record for r in at.session_state["batch_result"]["rows"]]
    assert [r.path for r in records] == HOSTILE
    for name, record in zip(HOSTILE, records, strict=True):
        assert not record.ok and re.search(BY_NAME[name].expect, record.error), (kind, name, record.error)
