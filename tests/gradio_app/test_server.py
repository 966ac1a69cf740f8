"""The real Gradio server, called as scripts call it: gradio_client and plain HTTP."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

import core
from core.captioning import CaptionRecord, to_string
from tests.browser.support import MAX_PIXELS, MAX_UPLOAD_MB
from tests.gradio_app.conftest import GradioServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(gradio_server: GradioServer) -> Client:
    return Client(gradio_server.url + "/", verbose=False, download_files=str(Path(gradio_server.data.root) / "downloads"))


def expected(server: GradioServer, image: Path, **generation: object) -> str:
    return core.caption(image, model=str(server.model), device="cpu", **generation)


def test_api_lists_caption_and_similar(client: Client) -> None:
    api = client.view_api(print_info=False, return_format="dict")
    names = set(api["named_endpoints"])
    assert {"/caption", "/similar", "/find_text"} <= names
    params = api["named_endpoints"]["/caption"]["parameters"]
    assert params[0]["parameter_has_default"] is False
    assert all(p["parameter_has_default"] for p in params[1:])  # one image is enough


def test_caption_equals_core_caption(client: Client, gradio_server: GradioServer) -> None:
    image = gradio_server.data.good
    got = client.predict(handle_file(str(image)), api_name="/caption")
    assert got and got == expected(gradio_server, image, num_beams=4, max_new_tokens=15)


def test_caption_passes_generation_settings(client: Client, gradio_server: GradioServer) -> None:
    image = gradio_server.data.gallery / "g05.png"
    got = client.predict(handle_file(str(image)), "Sampling", 4, 8, 1.5, 0.9, 7, api_name="/caption")
    assert got == expected(gradio_server, image, num_beams=1, do_sample=True, temperature=1.5,
                           top_p=0.9, seed=7, max_new_tokens=8)
    greedy = client.predict(handle_file(str(image)), "Greedy", 4, 15, api_name="/caption")
    assert greedy == expected(gradio_server, image, num_beams=1, max_new_tokens=15)


def test_caption_in_int8_uses_the_int8_captioner(client: Client, gradio_server: GradioServer,
                                                  tiny_coco_dir: Path) -> None:
    greedy = {"num_beams": 1, "max_new_tokens": 15}
    # A photo whose int8 caption differs from its float32 one tells the two captioners apart.
    image = next((p for p in sorted((tiny_coco_dir / "val2017").glob("*.jpg"))[:12]
                  if expected(gradio_server, p, dtype="int8", **greedy) != expected(gradio_server, p, **greedy)), None)
    assert image is not None, "these photos get the same captions in int8 and float32"
    got = client.predict(handle_file(str(image)), "Greedy", 4, 15, 1.0, 1.0, -1, "int8", api_name="/caption")
    assert got == expected(gradio_server, image, dtype="int8", **greedy)
    with pytest.raises(AppError, match="'fp8'.*not in the list of choices"):  # Gradio checks the radio
        client.predict(handle_file(str(image)), "Greedy", 4, 15, 1.0, 1.0, -1, "fp8", api_name="/caption")


def test_concurrent_captions_are_batched_and_each_correct(client: Client, gradio_server: GradioServer) -> None:
    images = [gradio_server.data.gallery / f"g{i:02d}.png" for i in range(6)]
    jobs = [(client.submit(handle_file(str(p)), api_name="/caption"), p) for p in images]
    for job, path in jobs:
        assert job.result(timeout=120) == expected(gradio_server, path, num_beams=4, max_new_tokens=15)


def test_not_an_image_raises_the_reason(client: Client, gradio_server: GradioServer) -> None:
    with pytest.raises(AppError) as err:
        client.predict(handle_file(str(gradio_server.data.not_image)), api_name="/caption")
    assert str(err.value) == "not-an-image.jpg: not a supported image (expected JPEG, PNG, WebP, GIF, BMP or TIFF)"


def test_too_many_pixels_raises_the_reason(client: Client, gradio_server: GradioServer) -> None:
    with pytest.raises(AppError) as err:
        client.predict(handle_file(str(gradio_server.data.too_many_pixels)), api_name="/caption")
    assert str(err.value).startswith("huge-pixels.png: image is 2000x1000")
    assert f"{MAX_PIXELS:,}" in str(err.value)


def test_upload_over_the_size_limit_is_refused(client: Client, gradio_server: GradioServer) -> None:
    assert gradio_server.data.too_large.stat().st_size > MAX_UPLOAD_MB * 1024 * 1024
    with pytest.raises(Exception, match=r"(?i)(too large|maximum|size|413)"):
        client.predict(handle_file(str(gradio_server.data.too_large)), api_name="/caption")
    # ...and the server keeps working
    assert client.predict(handle_file(str(gradio_server.data.good)), api_name="/caption")


def test_similar_matches_the_index(client: Client, gradio_server: GradioServer) -> None:
    from core.search import EmbeddingIndex

    query = gradio_server.data.gallery / "g03.png"
    got = client.predict(handle_file(str(query)), 3, api_name="/similar")
    assert got["error"] is None
    want = EmbeddingIndex.load(gradio_server.data.index).find_similar(core.load_image(query), k=4)
    # The gallery copy of the query (same bytes) is named, not counted as a neighbour.
    assert want[0].image_id == "g03" and got["same_image"] == "g03"
    assert [r["image_id"] for r in got["results"]] == [w.image_id for w in want[1:]]
    assert [r["rank"] for r in got["results"]] == [1, 2, 3]
    assert got["warning"] is None  # the fixture's index has not collapsed
    assert got["search"] == "exact search" and got["note"].startswith("Top 3 for the uploaded image · exact search.")
    for r, w in zip(got["results"], want[1:], strict=True):
        assert r["score"] == pytest.approx(w.score, abs=1e-4)
        assert r["captions"] == w.captions and r["captions"]


def test_find_text_matches_the_index(client: Client, gradio_server: GradioServer) -> None:
    from core.search import EmbeddingIndex

    index = EmbeddingIndex.load(gradio_server.data.index)
    words = " ".join(index.captions[2][0].split()[:3])
    got = client.predict(words, 4, api_name="/find_text")
    want = index.find_text(words, 4)
    assert got["error"] is None and want and got["search"] == "caption words, BM25 relevance"
    assert [(r["image_id"], r["score"]) for r in got["results"]] == [(w.image_id, pytest.approx(w.score)) for w in want]
    assert client.predict("", 4, api_name="/find_text")["error"].startswith("no words")


def test_similar_bad_upload_returns_the_reason(client: Client, gradio_server: GradioServer) -> None:
    got = client.predict(handle_file(str(gradio_server.data.not_image)), 3, api_name="/similar")
    assert got["results"] == [] and "not a supported image" in got["error"]


def test_batch_endpoint_table_and_downloads(client: Client, gradio_server: GradioServer) -> None:
    files = [gradio_server.data.gallery / "g00.png", gradio_server.data.not_image,
             gradio_server.data.gallery / "g01.png"]
    table, csv_path, jsonl_path, _status, zip_path = client.predict(
        [handle_file(str(p)) for p in files], "Greedy", api_name="/caption_batch")
    thumbs, rows = [r[0] for r in table["data"]], [r[1:] for r in table["data"]]
    assert thumbs[0].startswith("![](data:image/png;base64,") and thumbs[1] == ""
    assert [r[0] for r in rows] == ["g00.png", "not-an-image.jpg", "g01.png"]
    want = [expected(gradio_server, files[0], num_beams=1, max_new_tokens=15), "",
            expected(gradio_server, files[2], num_beams=1, max_new_tokens=15)]
    assert [r[1] for r in rows] == want
    assert "not a supported image" in rows[1][2]
    records = [CaptionRecord(r[0], r[1], r[2] or None) for r in rows]
    assert Path(csv_path).read_text(encoding="utf-8") == to_string(records, "csv")
    assert Path(jsonl_path).read_text(encoding="utf-8") == to_string(records, "jsonl")
    assert list(csv.reader(io.StringIO(Path(csv_path).read_text())))[0] == ["path", "caption", "error"]
    assert json.loads(Path(jsonl_path).read_text().splitlines()[1])["error"]
    with zipfile.ZipFile(zip_path) as zf:  # one sidecar caption file per captioned image
        assert {n: zf.read(n).decode() for n in zf.namelist()} == {
            "g00.txt": want[0] + "\n", "g01.txt": want[2] + "\n"}


@pytest.mark.parametrize("path", ["/etc/passwd", "{model}/config.json", "{root}/run/config.json",
                                  "{root}/gallery/../run/history.json"])
def test_files_outside_allowed_folders_are_not_served(gradio_server: GradioServer, path: str) -> None:
    target = path.format(model=gradio_server.model, root=gradio_server.data.root)
    response = httpx.get(f"{gradio_server.url}/gradio_api/file={target}", timeout=10)
    assert response.status_code in (403, 404), response.text[:200]
    assert "root:" not in response.text


def test_index_images_are_served(gradio_server: GradioServer) -> None:
    image = gradio_server.data.gallery / "g00.png"
    response = httpx.get(f"{gradio_server.url}/gradio_api/file={image}", timeout=10)
    assert response.status_code == 200
    assert response.content == image.read_bytes()

