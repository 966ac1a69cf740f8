"""Decode work and memory are bounded by what an image is, not by how its file is built (issue #11).

Hostile files are generated at several sizes (tests/reliability/datagen.py). Work is held to
its bound with counters (Pillow decoder calls, frame seeks) and memory with the peak RSS
growth of a child process; no timer is asserted.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import GifImagePlugin, Image, TiffImagePlugin

import core.images
from core import InvalidImageError, load_image
from core.decode_limits import (
    GIF_MAX_COMMENT_BLOCKS,
    JPEG_MAX_SCANS,
    JPEG_MAX_SEGMENTS,
    PNG_MIN_CHUNKS,
    TIFF_MIN_BLOCKS,
)
from tests.reliability import datagen as gen
from tests.reliability.conftest import REPO, child_env, skip_or_fail


@pytest.fixture
def decoders(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every Pillow decoder created while the test runs (one per strip, tile or scan pass)."""
    made: list[str] = []
    real = Image._getdecoder

    def counting(mode: str, decoder_name: str, args: object, extra: tuple = ()) -> object:
        made.append(decoder_name)
        return real(mode, decoder_name, args, extra)

    monkeypatch.setattr(Image, "_getdecoder", counting)
    yield made


def refused(data: bytes, match: str) -> str:
    with pytest.raises(InvalidImageError, match=match) as info:
        load_image(data)
    return str(info.value)


# -- TIFF strips and tiles --------------------------------------------------------------------

@pytest.mark.parametrize("strips", [TIFF_MIN_BLOCKS + 1, 100_000, 1_000_000])
def test_tiff_strips_past_the_pixels_are_refused_before_decoding(strips: int, decoders: list) -> None:
    # a 1-pixel-wide image with one row per strip: legal, but one decoder call per pixel
    msg = refused(gen.tiff_strips(1, strips, strips), r"TIFF strip count [\d,]+ is over the limit of 4,096")
    assert f"{strips:,}" in msg and "re-save" in msg
    # a 100x100 image whose table repeats its strips: Pillow would decode the image again each time
    refused(gen.tiff_strips(100, 100, strips), r"strip count .* over the limit of 100 that a 100x100")
    refused(gen.tiff_strips(64, 64, strips, tiled=True), r"TIFF tile count .* limit of 16 that a 64x64")
    assert decoders == []


def test_tiff_strips_within_the_bound_decode_one_call_each(decoders: list) -> None:
    out = load_image(gen.tiff_strips(1, TIFF_MIN_BLOCKS, TIFF_MIN_BLOCKS))
    assert out.size == (1, TIFF_MIN_BLOCKS) and len(decoders) == TIFF_MIN_BLOCKS
    decoders.clear()
    # one row per strip is fine when a row has >= 256 pixels: 5000 strips for 256 x 5000
    out = load_image(gen.tiff_strips(256, 5000, 5000))
    assert out.size == (256, 5000) and len(decoders) == 5000
    refused(gen.tiff_strips(255, 5000, 5000), r"strip count 5,000 is over the limit of 4,980")
    decoders.clear()
    assert load_image(gen.tiff_strips(64, 64, 16, tiled=True)).size == (64, 64)
    assert len(decoders) == 16


def test_tiff_first_page_does_not_walk_the_others() -> None:
    seeks = []
    real = TiffImagePlugin.TiffImageFile._seek

    def counting(self: TiffImagePlugin.TiffImageFile, frame: int) -> None:
        seeks.append(frame)
        real(self, frame)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(TiffImagePlugin.TiffImageFile, "_seek", counting)
        for pages in (10, 1000, 20_000):
            seeks.clear()
            assert load_image(gen.tiff_many_ifds(pages)).getpixel((0, 0)) == (128, 128, 128)
            assert seeks == [0], f"{pages} pages: seeks {seeks[:5]}..."


# -- JPEG scans and segments ------------------------------------------------------------------

@pytest.mark.parametrize("size, scans", [(64, JPEG_MAX_SCANS + 1), (512, 1000), (2000, 3000)])
def test_jpeg_with_too_many_scans_is_refused(size: int, scans: int, decoders: list) -> None:
    data = gen.jpeg_many_scans(size, scans)
    decoders.clear()  # the generator's own encoding
    msg = refused(data, r"JPEG scan count 101 is over the limit of 100")
    assert "normal progressive JPEG" in msg and decoders == []


def test_jpeg_scans_up_to_the_bound_decode() -> None:
    data = gen.jpeg_many_scans(64, JPEG_MAX_SCANS)
    assert data.count(b"\xff\xda") == JPEG_MAX_SCANS
    reference = Image.open(io.BytesIO(data)).convert("RGB")
    np.testing.assert_array_equal(np.asarray(load_image(data)), np.asarray(reference))


@pytest.mark.parametrize("segments", [JPEG_MAX_SEGMENTS + 1, 1_000_000])
def test_jpeg_with_too_many_segments_is_refused(segments: int, decoders: list) -> None:
    data = gen.jpeg_segments(segments)
    decoders.clear()  # the generator's own encoding
    refused(data, r"JPEG segment count 2,001 is over the limit of 2,000")
    assert decoders == []
    assert load_image(gen.jpeg_segments(JPEG_MAX_SEGMENTS - 20)).size == (16, 16)


def test_jpeg_walk_ignores_stuffed_and_fill_bytes() -> None:
    # FF 00 (stuffing) and FF D0-D7 (restart) inside scans, FF FF fill before markers
    rgb = Image.fromarray(np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    data = gen.encode(rgb, "JPEG", progressive=True, restart_marker_blocks=1)
    assert b"\xff\x00" in data and b"\xff\xd0" in data
    filled = data.replace(b"\xff\xda", b"\xff\xff\xff\xda")
    for blob in (data, filled):
        assert load_image(blob).size == (64, 64)


# -- PNG chunks, GIF blocks, BMP run-length codes ---------------------------------------------

@pytest.mark.parametrize("count", [PNG_MIN_CHUNKS, 100_000, 1_000_000])
def test_png_chunk_count_is_bounded(count: int, decoders: list) -> None:
    refused(gen.png_chunks(count), r"PNG chunk count 4,097 is over the limit of 4,096")
    refused(gen.png_chunks(count, split_idat=True), r"PNG chunk count")
    assert decoders == []
    assert load_image(gen.png_chunks(PNG_MIN_CHUNKS - 3)).size == (1, 1)


def test_big_png_keeps_a_chunk_per_256_pixels() -> None:
    img = Image.fromarray(np.random.default_rng(1).integers(0, 256, (512, 512), dtype=np.uint8))
    data = gen.encode(img, "PNG")  # then split its IDAT into 64-byte chunks (~4100 of them)
    at = data.index(b"IDAT") - 4
    length = int.from_bytes(data[at:at + 4], "big")
    stream = data[at + 8:at + 8 + length]
    chunks = b"".join(gen.png_chunk(b"IDAT", stream[i:i + 64]) for i in range(0, len(stream), 64))
    np.testing.assert_array_equal(np.asarray(load_image(data[:at] + chunks + data[at + 12 + length:]))[..., 0],
                                  np.asarray(img))


def test_gif_metadata_before_the_frame_is_bounded(decoders: list) -> None:
    # a comment of 255 full sub-blocks, its end block and the extension: 256 blocks
    assert load_image(gen.gif_comment((GIF_MAX_COMMENT_BLOCKS - 1) * 255)).size == (1, 1)
    for size in ((GIF_MAX_COMMENT_BLOCKS - 1) * 255 + 1, 1_000_000, 10_000_000):
        refused(gen.gif_comment(size), r"GIF comment block count 257 is over the limit of 256")
    many = b"".join(b"!\x01" + b"\x01x" * 99 + b"\x00" for _ in range(41))  # 41 x 100 blocks
    refused(gen._gif(many), r"GIF metadata block count 4,097 is over the limit of 4,096")
    assert load_image(gen._gif(many[:40 * 201])).size == (1, 1)
    for size in (65, 10_000_000):
        refused(gen.gif_junk(size), r"GIF stray byte count 65 is over the limit of 64")
    assert load_image(gen.gif_junk(64)).size == (1, 1)


def test_gif_first_frame_does_not_walk_the_others() -> None:
    seeks = []
    real = GifImagePlugin.GifImageFile._seek

    def counting(self: GifImagePlugin.GifImageFile, frame: int, update_image: bool = True) -> None:
        seeks.append(frame)
        real(self, frame, update_image)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(GifImagePlugin.GifImageFile, "_seek", counting)
        for frames in (2, 1000, 100_000):
            seeks.clear()
            assert load_image(gen.gif_frames(frames)).size == (1, 1)
            assert seeks == [0]


def test_bmp_run_length_data_is_bounded_by_pixels() -> None:
    for codes in (100, 1_000_000):
        refused(gen.bmp_rle_eol(codes), r"BMP run-length data size [\d,]+ is over the limit of 68")
    # an honest RLE8 BMP: one run per row plus end-of-line, end-of-bitmap
    rle = (b"\x08\x01" + b"\x00\x00") * 8 + b"\x00\x01"
    data = gen.bmp_rle_eol(0)
    at = len(data) - 4
    width_height = (8).to_bytes(4, "little") * 2
    honest = data[:18] + width_height + data[26:34] + len(rle).to_bytes(4, "little") + data[38:at] + rle
    out = load_image(honest)
    assert out.size == (8, 8)


# -- high bit depth ---------------------------------------------------------------------------

def old_high_depth(img: Image.Image) -> np.ndarray:
    """The conversion before issue #11 (float64 over the whole image), as the reference."""
    arr = np.asarray(img).astype(np.float64)
    with warnings.catch_warnings(), np.errstate(over="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slice
        if img.mode == "F":
            top = 1.0 if arr.size and float(np.nanmax(arr)) <= 1.0 else 255.0
        else:
            top = 65535.0 if arr.size and float(arr.max()) > 255 else 255.0
        return np.clip(np.nan_to_num(arr) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)


def high_depth_images() -> Iterator[Image.Image]:
    rng = np.random.default_rng(7)
    u16 = rng.integers(0, 65536, (37, 29), dtype=np.uint16)
    yield Image.fromarray(u16)                                    # I;16
    yield Image.frombytes("I;16B", (29, 37), u16.astype(">u2").tobytes())  # I;16B
    yield Image.fromarray(u16).convert("I")                       # I holding 16-bit data
    yield Image.fromarray((u16 // 300).astype(np.uint16))         # <= 255: kept as is
    yield Image.fromarray(rng.integers(-70000, 140000, (37, 29)).astype(np.int32))  # I, clipped
    f = rng.uniform(-0.5, 1.0, (37, 29)).astype(np.float32)
    f[3, :] = np.nan
    f[5, 4] = np.inf
    yield Image.fromarray(f)                                      # F in 0..1 with NaN / inf
    yield Image.fromarray((f * 300).astype(np.float32))           # F over 1
    yield Image.fromarray(np.full((37, 29), np.nan, np.float32))  # F, all NaN
    png = gen.encode(Image.fromarray(u16), "PNG")
    yield Image.open(io.BytesIO(png))               # I;16 from a real file


@pytest.mark.parametrize("band_pixels", [1 << 20, 29 * 4, 1])
def test_high_depth_conversion_gives_the_same_pixels(band_pixels: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core.images, "_BAND_PIXELS", band_pixels)  # one band, bands of 4 rows, rows
    for img in high_depth_images():
        expected = old_high_depth(img)
        out = np.asarray(load_image(img))
        for channel in range(3):
            np.testing.assert_array_equal(out[..., channel], expected, err_msg=img.mode)


# -- peak memory, measured in a child ---------------------------------------------------------

PEAK_CHILD = r"""
import json, sys
from core import load_image

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024

out = {}
for path in sys.argv[1:]:
    data = open(path, "rb").read()
    open("/proc/self/clear_refs", "w").write("5")  # peak RSS := current RSS
    before = status("VmRSS:")
    try:
        result = "ok %dx%d" % load_image(data).size
    except Exception as exc:
        result = type(exc).__name__
    out[path] = [status("VmHWM:") - before, result]
print(json.dumps(out))
"""


def peak_growth_mb(files: dict[str, bytes], folder: Path) -> dict[str, list]:
    if not Path("/proc/self/clear_refs").exists():
        skip_or_fail("peak RSS needs /proc/self/clear_refs (Linux)")
    paths = {}
    for label, data in files.items():
        paths[label] = folder / f"{label}.bin"
        paths[label].write_bytes(data)
    proc = subprocess.run([sys.executable, "-c", PEAK_CHILD, *map(str, paths.values())], cwd=REPO,
                          env=child_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    raw = json.loads(proc.stdout.strip().splitlines()[-1])
    return {label: raw[str(path)] for label, path in paths.items()}


@pytest.mark.timeout(300)
def test_peak_memory_of_hostile_files(tmp_path: Path) -> None:
    files = {
        "tiff_1M_strips": gen.tiff_strips(100, 100, 1_000_000),
        "tiff_200k_rows": gen.tiff_strips(1, 200_000, 200_000),
        "jpeg_36MP_3000_scans": gen.jpeg_many_scans(6000, 3000),
        "jpeg_1M_segments": gen.jpeg_segments(1_000_000),
        "png_1M_chunks": gen.png_chunks(1_000_000),
        "gif_10MB_comment": gen.gif_comment(10_000_000),
        "png16_2000": gen.png_16bit(2000, 2000),
        "png16_4000": gen.png_16bit(4000, 4000),
    }
    peaks = peak_growth_mb(files, tmp_path)
    print("\npeak RSS growth (MB):", {k: round(v[0]) for k, v in peaks.items()})
    for label, (growth, result) in peaks.items():
        if label.startswith("png16"):
            continue
        assert result == "InvalidImageError", (label, result)
        assert growth < 20, f"{label}: refusing it grew the peak RSS by {growth:.0f} MB"
    # 16-bit: the old float64 path cost ~32 bytes a pixel (+507 MB at 4000x4000); now the 2-byte
    # source, 1-byte grey and 4-byte RGB result plus one band. Per pixel = slope between sizes.
    for side in (2000, 4000):
        assert peaks[f"png16_{side}"][1] == f"ok {side}x{side}"
    small, large = peaks["png16_2000"][0], peaks["png16_4000"][0]
    per_pixel = (large - small) * 2**20 / (4000**2 - 2000**2)
    assert per_pixel < 12, f"16-bit PNG: {per_pixel:.1f} bytes a pixel ({small:.0f} / {large:.0f} MB)"
    assert large * 2**20 < 14 * 4000**2, f"16-bit 4000^2 PNG peaked at +{large:.0f} MB"
