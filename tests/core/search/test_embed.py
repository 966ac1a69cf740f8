from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.errors import InvalidImageError
from core.search.embed import embed_images, embed_one
from tests.core.search.helpers import FakeEncoder, make_encoder, random_image


def test_embeddings_are_deterministic_unit_norm_and_batch_independent(
    encoder: FakeEncoder, gallery: list[Path]
) -> None:
    a = embed_images(encoder, gallery, batch_size=3)
    b = embed_images(make_encoder(0), gallery, batch_size=7)
    assert a.embeddings.shape == (len(gallery), 8)
    assert a.embeddings.dtype == torch.float32
    torch.testing.assert_close(a.embeddings, b.embeddings, rtol=0, atol=1e-6)
    torch.testing.assert_close(a.embeddings.norm(dim=1), torch.ones(len(gallery)))
    assert a.kept == list(range(len(gallery))) and a.failures == []


def test_uses_eval_mode(encoder: FakeEncoder, gallery: list[Path]) -> None:
    encoder.encoder.train()  # a caller may hand over a module left in train mode
    first = embed_images(encoder, gallery[:2]).embeddings
    assert not encoder.encoder.training
    # BatchNorm in train mode would normalise over the batch: a batch of one would differ.
    torch.testing.assert_close(embed_one(encoder, gallery[0]), first[0], rtol=0, atol=1e-6)


def test_corrupt_images_are_skipped_and_counted_or_raised(
    encoder: FakeEncoder, gallery: list[Path], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg at all")
    inputs = [gallery[0], bad, random_image(3)]
    result = embed_images(encoder, inputs, on_error="skip")
    assert result.kept == [0, 2]
    assert [i for i, _ in result.failures] == [1]
    assert "bad.jpg" in result.failures[0][1]
    with pytest.raises(InvalidImageError, match="bad.jpg"):
        embed_images(encoder, inputs, on_error="raise")


def test_nothing_embeddable_and_bad_arguments(encoder: FakeEncoder, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nothing to embed"):
        embed_images(encoder, [tmp_path / "missing.png"])
    with pytest.raises(ValueError, match="batch size"):
        embed_images(encoder, [random_image(0)], batch_size=0)
    with pytest.raises(ValueError, match="on_error"):
        embed_images(encoder, [random_image(0)], on_error="ignore")  # type: ignore[arg-type]


def test_progress_bar_goes_to_stderr(
    encoder: FakeEncoder, gallery: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    embed_images(encoder, gallery, batch_size=2, progress=True, desc="embedding-test")
    captured = capsys.readouterr()
    assert "embedding-test" in captured.err and captured.out == ""
