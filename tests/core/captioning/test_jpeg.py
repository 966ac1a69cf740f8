"""Device JPEG decoding (the CUDA path's CPU twin): same pixels and captions as Pillow's path."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import core
from core.captioning.jpeg import decode_jpegs, read_plain_jpeg


def _jpeg(arr: np.ndarray, **save: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", **save)
    return buf.getvalue()


def test_only_plain_rgb_jpegs_take_the_fast_path(tmp_path: Path) -> None:
    rgb = (np.random.default_rng(0).random((40, 60, 3)) * 255).astype(np.uint8)
    plain = _jpeg(rgb)
    assert read_plain_jpeg(plain, 10**6) == plain
    path = tmp_path / "a.jpg"
    path.write_bytes(plain)
    assert read_plain_jpeg(path, 10**6) == plain
    assert read_plain_jpeg(str(path), 10) is None  # over the pixel cap: load_image words the error
    assert read_plain_jpeg(_jpeg(rgb[:, :, 0]), 10**6) is None  # greyscale
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated photo: Pillow's path applies the rotation
    assert read_plain_jpeg(_jpeg(rgb, exif=exif.tobytes()), 10**6) is None
    png = io.BytesIO()
    Image.fromarray(rgb).save(png, "PNG")
    assert read_plain_jpeg(png.getvalue(), 10**6) is None
    assert read_plain_jpeg(tmp_path / "missing.jpg", 10**6) is None
    assert read_plain_jpeg(b"", 10**6) is None


def test_cpu_decode_matches_pillow(sample_images: list[Path]) -> None:
    jpegs = [p for p in sample_images if p.suffix == ".jpg"]
    decoded = decode_jpegs([p.read_bytes() for p in jpegs], torch.device("cpu"))
    for path, tensor in zip(jpegs, decoded, strict=True):
        assert torch.equal(tensor.permute(1, 2, 0), torch.from_numpy(np.array(Image.open(path).convert("RGB"))))


def test_captioner_device_decode_gives_same_captions(tiny_model_dir: Path, sample_images: list[Path],
                                                     tmp_path: Path) -> None:
    truncated = tmp_path / "cut.jpg"
    data = sample_images[0].read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    inputs = [*sample_images, truncated, sample_images[0].read_bytes()]
    pil = core.Captioner(str(tiny_model_dir), device="cpu")
    dev = core.Captioner(str(tiny_model_dir), device="cpu", device_decode=True)
    assert not pil.device_decode and dev.device_decode
    got, want = (c.caption_batch(inputs, batch_size=4, errors="return", num_beams=2) for c in (dev, pil))
    assert [str(x) for x in got] == [str(x) for x in want]
    assert isinstance(got[len(sample_images)], core.InvalidImageError)
