"""Opt-in int8 pretrained encoders (core.search.int8_encoder): the image tower in int8 (torchao:
compiled, smaller batches padded; fbgemm: eager), the text tower unchanged, refusals off the CPU."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core import ConfigError
from core.search import EmbeddingIndex, embed_images, load_index_encoder
from core.search.int8_encoder import check_int8_device, pad_batch, quantise_image_tower
from core.search.pretrained import load_pretrained


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("int8-pictures")
    rng = np.random.default_rng(1)
    paths = []
    for i in range(5):  # batch 4: the second batch (one image) is padded to the first one's size
        p = folder / f"pic{i}.jpg"
        Image.fromarray(rng.integers(0, 255, (36 + 4 * i, 44, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


def test_pad_batch_repeats_the_last_row() -> None:
    batch = {"pixel_values": torch.arange(6.0).reshape(2, 3), "mask": torch.tensor([[1], [0]])}
    padded = pad_batch(batch, 4)
    assert padded["pixel_values"].tolist() == [[0, 1, 2], [3, 4, 5], [3, 4, 5], [3, 4, 5]]
    assert padded["mask"].tolist() == [[1], [0], [0], [0]]
    assert torch.equal(pad_batch(batch, 2)["mask"], batch["mask"])


@pytest.mark.parametrize("name", ["clip", "dinov2"])
def test_int8_index_vectors_match_eager_int8_and_stay_close_to_float32(
    name: str, tiny_encoders: dict[str, Path], pictures: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from torch._dynamo.utils import counters

    monkeypatch.setenv("IMG2TEXT_INT8_KERNEL", "torchao")  # the kernel that compiles, on any CPU
    fp32 = load_pretrained(tiny_encoders[name], device="cpu")
    int8 = load_pretrained(tiny_encoders[name], device="cpu", dtype="int8")
    assert int8.sha256 == fp32.sha256  # the same weights: an int8 index is searched with either
    embed_images(int8, pictures[:4], batch_size=4, progress=False)  # builds the compiled tower
    graphs = counters["stats"]["unique_graphs"]
    got = EmbeddingIndex.build(int8, pictures, batch_size=4, kind="exact")
    assert counters["stats"]["unique_graphs"] == graphs  # batches of 4 and of 1 (padded): no new build
    assert int8.encoder.compiled is not None and int8.encoder.compiled.batch_size == 4
    assert got.preprocessing["precision"] == "int8"
    # the padded last batch (one image + 3 copies) gives that image the vector a full batch gives it
    full = embed_images(int8, [pictures[4], *pictures[:3]], batch_size=4, progress=False).embeddings
    torch.testing.assert_close(got.embeddings[4], full[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(got.embeddings[:3], full[1:], atol=1e-5, rtol=0)
    assert counters["stats"]["unique_graphs"] == graphs
    # the same int8 weights without compiling or padding, one image at a time: the same vectors
    # up to the rounding of fused code
    eager = copy.deepcopy(fp32)
    assert quantise_image_tower(eager.encoder.model) == "torchao"
    alone = torch.cat([embed_images(eager, [p], progress=False).embeddings for p in pictures])
    assert float((got.embeddings * alone).sum(dim=1).min()) > 0.999
    reference = embed_images(fp32, pictures, batch_size=4, progress=False).embeddings
    assert float((got.embeddings * reference).sum(dim=1).min()) > 0.99


@pytest.mark.parametrize("kernel", ["torchao", "fbgemm"])
def test_int8_keeps_the_text_tower_in_float32(kernel: str, tiny_encoders: dict[str, Path],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMG2TEXT_INT8_KERNEL", kernel)
    fp32 = load_pretrained(tiny_encoders["clip"], device="cpu")
    int8 = load_pretrained(tiny_encoders["clip"], device="cpu", dtype="int8")
    texts = ["a red square", "a dog"]
    assert torch.equal(int8.embed_text(texts), fp32.embed_text(texts))
    model = int8.encoder.model
    assert type(model.text_model.encoder.layers[0].mlp.fc1) is torch.nn.Linear
    assert type(model.text_model.encoder.layers[0].mlp.fc1.weight).__name__ == "Parameter"
    vision = model.vision_model.encoder.layers[0].mlp.fc1
    if kernel == "torchao":
        assert type(vision.weight).__name__ == "Int8Tensor"
    else:
        from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

        assert isinstance(vision, DynamicLinear) and isinstance(model.visual_projection, DynamicLinear)


def test_fbgemm_int8_vectors_stay_close_to_float32_and_nothing_compiles(
    tiny_encoders: dict[str, Path], pictures: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel of CPUs without int8 dot-product instructions: eager, no compiled tower."""
    monkeypatch.setenv("IMG2TEXT_INT8_KERNEL", "fbgemm")
    for name in ("clip", "siglip2", "dinov2"):  # SigLIP's pooling head: an nn.MultiheadAttention
        fp32 = load_pretrained(tiny_encoders[name], device="cpu")
        int8 = load_pretrained(tiny_encoders[name], device="cpu", dtype="int8")
        assert int8.encoder.compiled is None and int8.preprocessing["precision"] == "int8"
        got = embed_images(int8, pictures, batch_size=4, progress=False).embeddings
        reference = embed_images(fp32, pictures, batch_size=4, progress=False).embeddings
        assert not torch.equal(got, reference)  # int8 arithmetic, not float32's
        assert float((got * reference).sum(dim=1).min()) > 0.99, name


def test_int8_is_refused_off_the_cpu_and_for_ssl_runs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="runs on the CPU.*bfloat16"):
        check_int8_device(torch.device("cuda"))
    check_int8_device(torch.device("cpu"))
    with pytest.raises(ConfigError, match="pretrained encoders.*--encoder-dtype"):
        load_index_encoder(tmp_path / "run", dtype="int8")


def test_int8_refused_for_gpu_actors_and_ssl_runs_on_ray() -> None:
    from core.distributed.runner import _check_int8_actors
    from core.distributed.workers import EmbedJob

    with pytest.raises(ConfigError, match="CPU actors"):
        _check_int8_actors("tiny/clip", None, 1)
    with pytest.raises(ConfigError, match="CPU actors"):
        _check_int8_actors("tiny/clip", "cuda", None)
    with pytest.raises(ConfigError, match="pretrained encoders"):
        _check_int8_actors(None, None, None)
    _check_int8_actors("tiny/clip", "cpu", None)
    # runs from before int8 keep their recorded settings; an int8 run records its dtype
    assert "encoder_dtype" not in EmbedJob("", "abc", encoder="tiny/clip").settings()
    assert EmbedJob("", "abc", encoder="tiny/clip", encoder_dtype="int8").settings()["encoder_dtype"] == "int8"


def test_cli_embeds_with_an_int8_encoder_and_searches_with_float32(
    tiny_encoders: dict[str, Path], pictures: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "index"
    cmd = [sys.executable, "-m", "core.cli", "ssl", "embed", "--encoder", str(tiny_encoders["dinov2"]),
           "--encoder-dtype", "int8", "--data", str(pictures[0].parent), "--out", str(out),
           "--batch-size", "4", "--device", "cpu", "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "index.json").read_text())
    assert manifest["preprocessing"]["precision"] == "int8"
    index = EmbeddingIndex.load(out)
    fp32 = load_pretrained(tiny_encoders["dinov2"], device="cpu")
    hits = index.find_similar(pictures[2], k=1, encoder=fp32)
    assert Path(hits[0].path).name == pictures[2].name  # an image finds itself with the float32 tower
