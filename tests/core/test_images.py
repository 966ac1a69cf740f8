"""Input rules of `core.load_image`: every mode to RGB, every bad input to InvalidImageError."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core import InvalidImageError, load_image
from core.images import iter_image_files


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a size in its header, with a tiny (wrong) data stream."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")


# -- accepted input types --------------------------------------------------------------------

@pytest.fixture
def rgb() -> Image.Image:
    arr = np.zeros((20, 30, 3), np.uint8)
    arr[..., 0] = 200
    arr[5:10, 5:10] = (0, 255, 0)
    return Image.fromarray(arr)


def test_every_input_type_gives_same_rgb(tmp_path: Path, rgb: Image.Image) -> None:
    data = encode(rgb, "PNG")
    path = tmp_path / "x.png"
    path.write_bytes(data)
    expected = np.asarray(rgb)
    for src in (str(path), path, data, bytearray(data), io.BytesIO(data), rgb, np.asarray(rgb)):
        out = load_image(src)
        assert out.mode == "RGB" and out.size == (30, 20)
        np.testing.assert_array_equal(np.asarray(out), expected)
    with open(path, "rb") as fh:
        assert load_image(fh).size == (30, 20)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_supported_formats(rgb: Image.Image, fmt: str) -> None:
    out = load_image(encode(rgb, fmt))
    assert out.mode == "RGB" and out.size == (30, 20)


def test_one_by_one_pixel_works() -> None:
    out = load_image(encode(Image.new("RGB", (1, 1), (9, 8, 7)), "PNG"))
    assert out.size == (1, 1) and out.getpixel((0, 0)) == (9, 8, 7)


# -- modes -----------------------------------------------------------------------------------

def test_alpha_is_composited_on_white() -> None:
    img = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent red
    img.putpixel((0, 0), (255, 0, 0, 255))
    out = load_image(encode(img, "PNG"))
    assert out.getpixel((1, 1)) == (255, 255, 255)
    assert out.getpixel((0, 0)) == (255, 0, 0)


def test_la_and_palette_transparency_composite_on_white() -> None:
    la = Image.new("LA", (3, 3), (0, 0))
    assert load_image(encode(la, "PNG")).getpixel((0, 0)) == (255, 255, 255)
    p = Image.new("P", (3, 3), 0)
    p.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    p.putpixel((1, 1), 1)
    out = load_image(encode(p, "PNG", transparency=0))
    assert out.getpixel((0, 0)) == (255, 255, 255)
    assert out.getpixel((1, 1)) == (255, 0, 0)


@pytest.mark.parametrize("mode", ["L", "1", "P", "CMYK", "YCbCr"])
def test_plain_modes_become_rgb(mode: str) -> None:
    img = Image.new("RGB", (8, 6), (10, 120, 240)).convert(mode)
    out = load_image(img)
    assert out.mode == "RGB" and out.size == (8, 6)


def test_cmyk_jpeg_file() -> None:
    img = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # red in CMYK
    r, g, b = load_image(encode(img, "JPEG")).getpixel((4, 4))
    assert r > 200 and g < 60 and b < 60


def test_16_bit_grey_is_scaled_not_clipped() -> None:
    arr = np.array([[0, 32768, 65535]], dtype=np.uint16)
    img = Image.fromarray(arr)
    assert img.mode.startswith("I;16")
    out = np.asarray(load_image(encode(img, "PNG")))
    assert out.shape == (1, 3, 3)
    assert list(out[0, :, 0]) == [0, 128, 255]


def test_float_mode() -> None:
    img = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert list(np.asarray(load_image(img))[0, :, 0]) == [0, 128, 255]


def test_exif_orientation_is_applied() -> None:
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    out = load_image(encode(img, "JPEG", exif=exif.tobytes()))
    assert out.size == (20, 40)


def test_animated_gif_gives_first_frame() -> None:
    frames = [Image.new("RGB", (5, 5), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=10)
    r, g, b = load_image(data).getpixel((2, 2))
    assert r > 200 and g < 50 and b < 50


# -- bad inputs ------------------------------------------------------------------------------

def _bad(src, match: str, **kw) -> InvalidImageError:
    with pytest.raises(InvalidImageError, match=match) as info:
        load_image(src, **kw)
    assert isinstance(info.value, ValueError)
    return info.value


def test_empty_input(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    err = _bad(empty, "empty")
    assert str(empty) in str(err)
    _bad(b"", "empty")


def test_missing_file_and_folder(tmp_path: Path) -> None:
    _bad(tmp_path / "nope.png", "not found")
    _bad(tmp_path, "not a regular file")


def test_truncated_jpeg_and_png(rgb: Image.Image) -> None:
    big = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    for fmt in ("JPEG", "PNG"):
        data = encode(big, fmt)
        _bad(data[: len(data) // 2], "truncated|corrupt")


@pytest.mark.parametrize("payload", [
    b"hello, I am a text file\n",
    b"<html><body>hi</body></html>",
    b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>',
])
def test_non_images(payload: bytes, tmp_path: Path) -> None:
    fake = tmp_path / "fake.jpg"
    fake.write_bytes(payload)
    err = _bad(fake, "not a supported image")
    assert "fake.jpg" in str(err)


@pytest.mark.parametrize("fmt", ["PPM", "ICO", "TGA"])
def test_formats_users_dont_upload_are_refused(rgb: Image.Image, fmt: str) -> None:
    _bad(encode(rgb, fmt), "not a supported image")


def test_pixel_cap_is_configurable(rgb: Image.Image) -> None:
    _bad(encode(rgb, "PNG"), "over the limit", max_pixels=599)
    assert load_image(encode(rgb, "PNG"), max_pixels=600).size == (30, 20)
    _bad(rgb, "over the limit", max_pixels=10)
    _bad(np.zeros((10, 10, 3), np.uint8), "over the limit", max_pixels=50)


def test_decompression_bomb_fails_fast_without_allocating() -> None:
    bomb = png_header_only(100_000, 100_000)
    tracemalloc.start()
    try:
        err = _bad(bomb, "too large|over the limit")
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert "pixels" in str(err)
    assert peak < 20 * 1024 * 1024  # the image itself would be 30 GB


def test_byte_cap(rgb: Image.Image, tmp_path: Path) -> None:
    data = encode(rgb, "PNG")
    _bad(data, "byte limit", max_bytes=len(data) - 1)
    path = tmp_path / "x.png"
    path.write_bytes(data)
    _bad(path, "byte limit", max_bytes=10)


@pytest.mark.parametrize("arr, match", [
    (np.zeros((4, 4), np.uint8), "shape"),
    (np.zeros((4, 4, 4), np.uint8), "shape"),
    (np.zeros((4, 4, 3), np.float32), "uint8"),
    (np.zeros((0, 4, 3), np.uint8), "no pixels"),
])
def test_bad_arrays(arr: np.ndarray, match: str) -> None:
    err = _bad(arr, match)
    assert "array shape" in str(err)


def test_unsupported_types_and_text_streams() -> None:
    _bad(12345, "unsupported input type")
    _bad(io.StringIO("not binary"), "binary mode")


def test_iter_image_files_recurses_and_filters(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("b.jpg", "a.PNG", "notes.txt", "sub/c.webp"):
        (tmp_path / name).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in iter_image_files([tmp_path])]
    assert found == ["a.PNG", "b.jpg", "sub/c.webp"]
    flat = [p.name for p in iter_image_files([tmp_path], recursive=False)]
    assert flat == ["a.PNG", "b.jpg"]
    explicit = tmp_path / "notes.txt"
    assert list(iter_image_files([explicit])) == [explicit]
