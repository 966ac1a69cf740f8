"""Pretrained encoders (tiny random CLIP, SigLIP 2, DINOv2 loaded like hub ids) as index encoders,
and text-to-image search by meaning, by words and fused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from core import CheckpointError, load_image
from core.search import EmbeddingIndex, QueryError
from core.search.pretrained import load_pretrained
from core.search.textsearch import RRF_K, reciprocal_rank_fusion

CAPTIONS = ["a red square", "a green circle", "a blue square", "a red circle", "a dog", "a cat"]
QUERIES = ["a red square", "green", "dog on a beach", "cat"]


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(len(CAPTIONS)):
        p = folder / f"pic{i}.jpg"
        Image.fromarray(rng.integers(0, 255, (40 + 5 * i, 48, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


def _reference_image_features(folder: Path, paths: list[Path]) -> torch.Tensor:
    """transformers' own loop: AutoImageProcessor + the model's get_image_features / CLS."""
    from transformers import AutoConfig, AutoImageProcessor, AutoModel

    model = AutoModel.from_pretrained(folder).eval()
    processor = AutoImageProcessor.from_pretrained(folder)
    inputs = processor(images=[load_image(p) for p in paths], return_tensors="pt")
    with torch.no_grad():
        if AutoConfig.from_pretrained(folder).model_type == "dinov2":
            out = model(**inputs).last_hidden_state[:, 0]  # the CLS token (layer-normed)
        else:
            out = model.get_image_features(**inputs).pooler_output
    return F.normalize(out, dim=1)


@pytest.mark.parametrize("name", ["clip", "siglip2", "dinov2"])
def test_index_vectors_are_the_models_normalised_image_features(
    name: str, tiny_encoders: dict[str, Path], tiny_hub: Path, pictures: list[Path]
) -> None:
    encoder = load_pretrained(f"tiny/{name}", device="cpu")  # by hub id, from the cache
    index = EmbeddingIndex.build(encoder, pictures, batch_size=4, kind="exact")
    expected = _reference_image_features(tiny_encoders[name], pictures)
    assert index.embeddings.shape == expected.shape
    torch.testing.assert_close(index.embeddings, expected, atol=1e-5, rtol=1e-4)
    record = index._head()["encoder"]
    assert record["id"] == f"tiny/{name}" and record["family"] == name
    assert record["revision"] == "0123456789abcdef0123456789abcdef01234567"
    assert record["dimension"] == expected.shape[1]
    import hashlib

    weights = (tiny_encoders[name] / "model.safetensors").read_bytes()
    assert record["sha256"] == hashlib.sha256(weights).hexdigest() == index.checkpoint.sha256


def _hand_ranking(folder: Path, index: EmbeddingIndex, text: str) -> list[tuple[int, float]]:
    """Cosine between the text tower's output and the image vectors, computed here."""
    from transformers import AutoModel, AutoProcessor

    model = AutoModel.from_pretrained(folder).eval()
    processor = AutoProcessor.from_pretrained(folder)
    kwargs = ({"padding": True, "truncation": True} if model.config.model_type == "clip"
              else {"padding": "max_length", "truncation": True, "max_length": 64})
    with torch.no_grad():
        t = model.get_text_features(**processor(text=[text], return_tensors="pt", **kwargs)).pooler_output
    scores = (F.normalize(t, dim=1) @ index.embeddings.T)[0]
    order = torch.argsort(scores, descending=True, stable=True)
    return [(int(i), float(scores[i])) for i in order]


@pytest.mark.parametrize("name", ["clip", "siglip2"])
def test_find_text_semantic_ranks_as_a_hand_computed_cosine(
    name: str, tiny_encoders: dict[str, Path], pictures: list[Path]
) -> None:
    encoder = load_pretrained(tiny_encoders[name], device="cpu")  # a local folder
    index = EmbeddingIndex.build(encoder, pictures, kind="exact")
    assert index.text_mode() == "semantic"  # no captions: meaning only
    for text in QUERIES:
        hits = index.find_text(text, k=len(pictures), mode="semantic")
        expected = _hand_ranking(tiny_encoders[name], index, text)
        assert [index.paths.index(h.path) for h in hits] == [row for row, _ in expected]
        np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], atol=1e-5)
    with pytest.raises(QueryError, match="captions"):
        index.find_text("red", mode="hybrid")


def test_reciprocal_rank_fusion_on_a_crafted_case() -> None:
    # row 7: ranks 2 and 1 -> 1/62 + 1/61; row 3: rank 1 only -> 1/61; row 5: ranks 3 and 2.
    fused = reciprocal_rank_fusion([[3, 7, 5], [7, 5, 9]], k=10)
    expected = {7: 1 / 62 + 1 / 61, 5: 1 / 63 + 1 / 62, 3: 1 / 61, 9: 1 / 63}
    assert [row for row, _ in fused] == [7, 5, 3, 9]
    assert all(abs(score - expected[row]) < 1e-12 for row, score in fused)
    # a tie (both 1/61) goes to the semantic ranking's first, then k cuts
    assert reciprocal_rank_fusion([[1], [2]], k=1) == [(1, 1 / (RRF_K + 1))]


def test_hybrid_fuses_the_semantic_and_word_rankings(
    tiny_encoders: dict[str, Path], pictures: list[Path], tmp_path: Path
) -> None:
    encoder = load_pretrained(tiny_encoders["clip"], device="cpu")
    index = EmbeddingIndex.build(encoder, pictures, kind="exact")
    index.add_captions({str(p): c for p, c in zip(pictures, CAPTIONS, strict=True)})
    assert index.text_mode() == "hybrid" and index.text_mode("words") == "words"
    text = "red square"
    meaning = [row for row, _ in _hand_ranking(tiny_encoders["clip"], index, text)]
    words = [index.paths.index(h.path) for h in index.find_text(text, k=10, mode="words")]
    assert words[:2] and set(words) <= {0, 2, 3}  # the captions that hold "red" or "square"
    hybrid = index.find_text(text, k=len(pictures))
    scores: dict[int, float] = {}
    best: dict[int, tuple[int, int]] = {}  # (best rank, which ranking): the tie-break
    for which, ranking in enumerate((meaning, words)):
        for rank, row in enumerate(ranking, 1):
            scores[row] = scores.get(row, 0.0) + 1 / (60 + rank)
            best[row] = min(best.get(row, (rank, which)), (rank, which))
    expected = sorted(scores, key=lambda r: (-scores[r], best[r]))
    assert [index.paths.index(h.path) for h in hybrid] == expected
    np.testing.assert_allclose([h.score for h in hybrid], sorted(scores.values(), reverse=True))


def test_an_index_refuses_another_encoder(tiny_encoders: dict[str, Path], pictures: list[Path],
                                           tmp_path: Path) -> None:
    clip = load_pretrained(tiny_encoders["clip"], device="cpu")
    folder = EmbeddingIndex.build(clip, pictures, kind="exact").save(tmp_path / "idx")
    other = load_pretrained(tiny_encoders["siglip2"], device="cpu")
    with pytest.raises(CheckpointError, match=r"built with encoder .*clip .*clip, 16-d.*given is encoder .*siglip2"):
        EmbeddingIndex.load(folder, expect=other)
    index = EmbeddingIndex.load(folder)
    with pytest.raises(CheckpointError, match="another model"):
        index.find_text("red", mode="semantic", encoder=other)
    with pytest.raises(CheckpointError, match="another model"):
        index.find_similar(pictures[0], encoder=other)


def test_save_load_keeps_the_encoder_and_reloads_it_for_queries(
    tiny_encoders: dict[str, Path], pictures: list[Path], tmp_path: Path
) -> None:
    clip = load_pretrained(tiny_encoders["clip"], device="cpu")
    built = EmbeddingIndex.build(clip, pictures, kind="exact")
    folder = built.save(tmp_path / "idx")
    manifest = json.loads((folder / "index.json").read_text())
    assert manifest["encoder"]["family"] == "clip" and manifest["encoder"]["dimension"] == 16
    loaded = EmbeddingIndex.load(folder)  # no encoder given: reloaded from the recorded folder
    assert loaded.same_contents(built)
    for text in QUERIES:
        assert ([h.image_id for h in loaded.find_text(text, 3)]
                == [h.image_id for h in built.find_text(text, 3)])
    assert loaded.find_similar(pictures[1], 1)[0].image_id == "pic1"


def test_dinov2_has_no_text_tower(tiny_encoders: dict[str, Path], pictures: list[Path]) -> None:
    index = EmbeddingIndex.build(load_pretrained(tiny_encoders["dinov2"], device="cpu"), pictures)
    assert index.text_mode() == "words"
    with pytest.raises(QueryError, match="needs an index built with a CLIP or SigLIP encoder.*dinov2"):
        index.find_text("red", mode="semantic")
