"""Fuzzing ``core.load_image`` with mutated bytes of small valid JPEG/PNG/GIF/WebP/TIFF/BMP files.

Property: the result is an RGB image within the pixel cap, or an ``InvalidImageError`` naming the
input; never another exception, never a hang (pytest-timeout bounds the whole test).

Normal runs try ``FUZZ_EXAMPLES`` (default 300) derandomized examples plus the saved corpus below
(``@example``); a long local run::

    FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest tests/reliability/test_fuzz_load_image.py \
        -p no:cacheprovider --timeout 3600

uses fresh randomness each time and keeps failing inputs in ``$FUZZ_DB`` (default: no database).
"""

from __future__ import annotations

import io
import os
from functools import cache

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase
from PIL import Image

from core import InvalidImageError, load_image

FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP")
MAX_PIXELS = 1_000_000  # keeps what a mutated header may legitimately allocate small
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
LONG_RUN = "FUZZ_EXAMPLES" in os.environ

# Pillow warns about the corrupt EXIF / TIFF tags that mutations create; that is expected here.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL")


@cache
def seed(fmt: str) -> bytes:
    """A small valid file of ``fmt`` (12x10, structured pixels so compressors emit real data)."""
    arr = np.zeros((10, 12, 3), np.uint8)
    arr[..., 0] = np.arange(12) * 20
    arr[..., 1] = np.arange(10)[:, None] * 25
    arr[3:7, 4:9, 2] = 255
    img = Image.fromarray(arr)
    buf = io.BytesIO()
    if fmt == "GIF":
        frames = [img.convert("P"), Image.fromarray(255 - arr).convert("P")]
        frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=20)
    elif fmt == "PNG":
        img.convert("RGBA").save(buf, "PNG")
    else:
        img.save(buf, fmt)
    return buf.getvalue()


# A mutation: (kind, position, payload). Positions near the start hit headers and chunk tables.
position = st.one_of(st.integers(0, 64), st.integers(0, 1 << 16))
mutation = st.tuples(
    st.sampled_from(["flip", "set", "insert", "delete", "truncate", "duplicate"]),
    position,
    st.binary(min_size=1, max_size=8),
)


def mutate(data: bytes, ops: list[tuple[str, int, bytes]]) -> bytes:
    buf = bytearray(data)
    for kind, pos, payload in ops:
        if not buf:
            break
        pos %= len(buf)
        if kind == "flip":
            buf[pos] ^= payload[0] or 0xFF
        elif kind == "set":
            buf[pos : pos + len(payload)] = payload
        elif kind == "insert":
            buf[pos:pos] = payload
        elif kind == "delete":
            del buf[pos : pos + len(payload) * 4]
        elif kind == "truncate":
            del buf[pos:]
        elif kind == "duplicate":
            chunk = bytes(buf[pos : pos + 64])
            buf[pos:pos] = chunk * (1 + payload[0] % 4)
    return bytes(buf)


def check(data: bytes) -> None:
    try:
        img = load_image(data, max_pixels=MAX_PIXELS)
    except InvalidImageError as exc:
        assert str(exc).startswith(f"<bytes: {len(data)} bytes>: "), str(exc)
        assert exc.reason
        return
    assert isinstance(img, Image.Image) and img.mode == "RGB"
    w, h = img.size
    assert w >= 1 and h >= 1 and w * h <= MAX_PIXELS
    np.asarray(img)  # the pixels are really there


_settings = settings(
    max_examples=EXAMPLES,
    deadline=None,  # shared CPUs; hangs are caught by pytest-timeout instead
    derandomize=not LONG_RUN,
    database=DirectoryBasedExampleDatabase(os.environ["FUZZ_DB"]) if os.environ.get("FUZZ_DB") else None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)


# The saved corpus: replayed on every run. Each line is a mutation that reached a distinct
# error path in the decoders while this test was written (headers, chunk CRCs, IFD offsets...).
@pytest.mark.timeout(600 if not LONG_RUN else 36_000)
@_settings
@given(fmt=st.sampled_from(FORMATS), ops=st.lists(mutation, min_size=1, max_size=6))
@example(fmt="PNG", ops=[("set", 16, b"\x00\x01\x86\xa0\x00\x01\x86\xa0")])  # IHDR 100000x100000
@example(fmt="PNG", ops=[("set", 16, b"\x00\x00\x00\x00")])  # zero width
@example(fmt="PNG", ops=[("flip", 30, b"\x01")])  # IHDR CRC mismatch
@example(fmt="PNG", ops=[("truncate", 40, b"\x00")])  # cut inside the first chunk
@example(fmt="JPEG", ops=[("set", 2, b"\xff\xd9")])  # EOI straight after SOI
@example(fmt="JPEG", ops=[("delete", 20, b"\x00" * 8)])  # lose part of a table
@example(fmt="JPEG", ops=[("duplicate", 2, b"\x03")])  # repeated markers
@example(fmt="GIF", ops=[("set", 6, b"\xff\xff\xff\xff")])  # logical screen 65535x65535
@example(fmt="GIF", ops=[("set", 10, b"\x87")])  # bogus global colour table size
@example(fmt="GIF", ops=[("truncate", 13, b"\x00")])  # header only
@example(fmt="WEBP", ops=[("set", 4, b"\xff\xff\xff\x7f")])  # RIFF size far past the end
@example(fmt="WEBP", ops=[("flip", 26, b"\xff")])  # VP8 frame header
@example(fmt="TIFF", ops=[("set", 4, b"\xff\xff\xff\x7f")])  # first IFD offset past the end
@example(fmt="TIFF", ops=[("set", 4, b"\x08\x00\x00\x00")])  # IFD pointing into the header
@example(fmt="TIFF", ops=[("duplicate", 8, b"\x02")])  # repeated IFD entries
@example(fmt="BMP", ops=[("set", 18, b"\xff\xff\xff\x7f")])  # width 2^31-1
@example(fmt="BMP", ops=[("set", 22, b"\x00\x00\x00\x80")])  # height -2^31
@example(fmt="BMP", ops=[("set", 28, b"\x40\x00")])  # 64 bits per pixel
@example(fmt="BMP", ops=[("set", 10, b"\xff\xff\xff\x00")])  # pixel data offset past the end
def test_mutated_images_load_or_fail_cleanly(fmt: str, ops: list[tuple[str, int, bytes]]) -> None:
    check(mutate(seed(fmt), ops))


@pytest.mark.timeout(120)
@settings(max_examples=max(20, EXAMPLES // 4), deadline=None, derandomize=not LONG_RUN, database=None)
@given(data=st.binary(max_size=512), fmt=st.sampled_from(FORMATS))
def test_valid_header_then_random_bytes(data: bytes, fmt: str) -> None:
    """A real file's first 32 bytes (magic numbers, sizes) followed by noise."""
    check(seed(fmt)[:32] + data)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_seed_is_valid(fmt: str) -> None:
    """The fuzz seeds themselves load (otherwise the fuzzer only tests the error path)."""
    assert load_image(seed(fmt)).size == (12, 10)
