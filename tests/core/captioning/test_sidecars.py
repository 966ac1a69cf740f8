"""Sidecar rules: skip / overwrite / append / prepend, idempotent reruns, extensions, mirrored paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.captioning import caption_extension, mirror_name, sidecar_path, write_sidecar
from core.errors import ConfigError


def test_modes(tmp_path: Path) -> None:
    path = tmp_path / "photo.txt"
    assert write_sidecar(path, "a dog") and path.read_text() == "a dog\n"
    assert not write_sidecar(path, "a cat") and path.read_text() == "a dog\n"  # skip keeps hand edits
    assert write_sidecar(path, "a cat", "append") and path.read_text() == "a dog, a cat\n"
    assert not write_sidecar(path, "a cat", "append")  # a rerun adds nothing twice
    assert write_sidecar(path, "ohwx", "prepend") and path.read_text() == "ohwx, a dog, a cat\n"
    assert not write_sidecar(path, "ohwx", "prepend")
    assert write_sidecar(path, "new", "overwrite") and path.read_text() == "new\n"
    assert not list(tmp_path.glob(".*.tmp"))


def test_extensions_and_paths(tmp_path: Path) -> None:
    assert caption_extension("caption") == ".caption" and caption_extension(".txt") == ".txt"
    for bad in (".png", "JPG", "a/b", "."):
        with pytest.raises(ConfigError):
            caption_extension(bad)
    image = tmp_path / "src" / "sub" / "x.y.jpg"
    assert sidecar_path(image) == image.with_name("x.y.txt")
    assert sidecar_path(image, ".caption", roots=[tmp_path / "src"], out_dir=tmp_path / "out") == \
        tmp_path / "out" / "sub" / "x.y.caption"
    assert str(mirror_name(image, [tmp_path, tmp_path / "src"])) == "sub/x.y.jpg"  # the deepest root
