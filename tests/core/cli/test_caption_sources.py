"""``img2text caption`` and ``img2text ssl embed`` (single process) read every batch source the
``--ray`` path reads.

Tar shards, parquet files (bytes and path tables) and a text file of paths are written here from
Tiny COCO with hostile members mixed in; their captions must equal ``Captioner.caption_batch`` on
the same images, their embeddings ``core.search.embed_images`` on the files, and each hostile
member must be one reported failure (exit status 1).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import core
from core.cli import main
from tests.core.distributed.helpers import write_parquet_files, write_tar_shards

GREEDY = ("--greedy", "--max-new-tokens", "8", "--quiet")


@pytest.fixture(scope="module")
def images(tiny_coco_dir: Path) -> list[Path]:
    return sorted((tiny_coco_dir / "val2017").glob("*.jpg"))[:6]


@pytest.fixture(scope="module")
def reference(tiny_model_dir: Path, images: list[Path]) -> dict[str, str]:
    """stem -> caption from the library on the original files."""
    cap = core.get_captioner(str(tiny_model_dir), device="cpu")
    captions = cap.caption_batch(images, num_beams=1, max_new_tokens=8)
    return {p.stem: c for p, c in zip(images, captions, strict=True)}


def _caption(capsys, source: str, model: Path, out: Path) -> tuple[int, dict[str, str], str]:
    code = main(["caption", source, "--model", str(model), "--format", "jsonl", "-o", str(out), *GREEDY])
    err = capsys.readouterr().err
    rows = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    failed = {r["path"] for r in rows if r.get("error")}  # failed inputs are rows with their error
    assert all(not r["caption"] for r in rows if r.get("error"))
    return code, {Path(r["path"]).stem: r["caption"] for r in rows if r["path"] not in failed}, err


def test_tar_shards_by_brace_pattern(capsys, tmp_path, tiny_model_dir, images, reference) -> None:
    hostile = write_tar_shards(images, tmp_path / "shards", per_shard=3)
    code, rows, err = _caption(capsys, str(tmp_path / "shards" / "{00000..00001}.tar"),
                               tiny_model_dir, tmp_path / "out.jsonl")
    assert code == 1  # the hostile members failed
    assert rows == reference
    for key in hostile:
        assert f"skipped {key}" in err
    errors = {json.loads(line)["path"] for line in (tmp_path / "out.jsonl").read_text().splitlines()
              if json.loads(line).get("error")}
    assert errors == set(hostile)


def test_parquet_folder(capsys, tmp_path, tiny_model_dir, images, reference) -> None:
    hostile = write_parquet_files(images, tmp_path / "tables", per_file=3)
    code, rows, err = _caption(capsys, str(tmp_path / "tables"), tiny_model_dir, tmp_path / "out.jsonl")
    assert code == 1
    assert {k: v for k, v in rows.items() if k in reference} == reference
    assert set(rows) <= set(reference) | set(hostile)
    assert all(f"skipped {key}" in err for key in hostile if key not in rows)


def test_text_file_of_paths(capsys, tmp_path, tiny_model_dir, images, reference) -> None:
    listing = tmp_path / "paths.txt"
    listing.write_text("".join(f"{p}\n" for p in images))
    code, rows, err = _caption(capsys, str(listing), tiny_model_dir, tmp_path / "out.jsonl")
    assert code == 0, err
    assert rows == reference


# ------------------------------------------------------------------ ssl embed, every source kind
@pytest.fixture(scope="module")
def encoder_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SSL checkpoint written through core.ssl's own API (random weights)."""
    import torch

    from core.ssl.checkpoint import save_checkpoint
    from core.ssl.config import SSLConfig
    from core.ssl.models import build_model

    folder = tmp_path_factory.mktemp("encoder") / "run"
    config = SSLConfig(img_size=32, batch_size=8, num_epochs=1, seed=0, out_dir=folder)
    torch.manual_seed(0)
    model = build_model(config)
    save_checkpoint(folder, model, torch.optim.SGD(model.parameters(), lr=0.1), config, 1,
                    torch.get_rng_state())
    return folder


@pytest.fixture(scope="module")
def local_embeddings(encoder_run: Path, images: list[Path]) -> dict[str, object]:
    """stem -> embedding from the library on the original files."""
    from core.search import embed_images
    from core.ssl import load_encoder

    result = embed_images(load_encoder(encoder_run, device="cpu"), images, batch_size=4)
    return {p.stem: v for p, v in zip(images, result.embeddings.numpy(), strict=True)}


def _embed(capsys, source: str, run: Path, out: Path) -> tuple[int, object, str, str]:
    from core.search import EmbeddingIndex

    code = main(["ssl", "embed", "--data", source, "--checkpoint", str(run), "--out", str(out),
                 "--kind", "exact", "--device", "cpu", "--quiet"])
    stdout, err = capsys.readouterr()
    return code, EmbeddingIndex.load(out) if (out / "index.json").exists() else None, stdout, err


@pytest.mark.parametrize("kind", ["tar", "parquet", "list"])
def test_ssl_embed_reads_every_source_kind(capsys, tmp_path, encoder_run, images, local_embeddings,
                                           kind) -> None:
    import numpy as np

    hostile: list[str] = []
    if kind == "tar":
        hostile = write_tar_shards(images, tmp_path / "shards", per_shard=4)
        source = str(tmp_path / "shards" / "{00000..00001}.tar")
    elif kind == "parquet":
        hostile = write_parquet_files(images, tmp_path / "tables", per_file=3)
        source = str(tmp_path / "tables")
    else:
        source = str(tmp_path / "paths.txt")
        Path(source).write_text("".join(f"{p}\n" for p in images))
    code, index, out, err = _embed(capsys, source, encoder_run, tmp_path / "index")
    assert code == (1 if hostile else 0), err
    assert index is not None and f"({kind} source" in out
    stems = [Path(str(i)).stem for i in index.image_ids]
    assert sorted(stems) == sorted(local_embeddings)  # every good image once, hostile ones not
    for row, stem in enumerate(stems):
        np.testing.assert_allclose(index.embeddings[row].numpy(), local_embeddings[stem], atol=1e-5)
    for key in hostile:
        assert f"skipped {key}: " in err  # each hostile member named by its key
    assert len(index.skipped) == len(hostile)
