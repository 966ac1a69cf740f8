"""The app tests' gallery indexed with the tiny random CLIP and no captions: searched by meaning."""

from __future__ import annotations

from pathlib import Path

from tests.browser.support import AppData


def clip_index(data: AppData, clip_folder: Path, out: Path) -> Path:
    """Index ``data.gallery`` with the tiny CLIP at ``clip_folder`` (no captions) into ``out``."""
    if (out / "index.json").is_file():
        return out
    from core.search import EmbeddingIndex, load_pretrained
    from core.ssl import ImageRecord

    records = [ImageRecord(p.stem, p, [], []) for p in sorted(data.gallery.glob("g*.png"))]
    index = EmbeddingIndex.build(load_pretrained(clip_folder, device="cpu"), records, data_root=data.gallery,
                                 device="cpu", progress=False, kind="exact")
    assert index.text_mode() == "semantic"
    return index.save(out)
