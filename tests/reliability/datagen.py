"""Small generated images for the reliability tests (no third-party images, nothing committed)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def image(seed: int, size: int = 32) -> Image.Image:
    """Stripes whose angle, frequency and colours depend on ``seed`` (distinct, compressible)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    angle, freq = rng.uniform(0, np.pi), rng.uniform(0.15, 0.6)
    wave = np.sin(freq * (np.cos(angle) * xx + np.sin(angle) * yy)) > 0
    c1, c2 = rng.integers(0, 256, size=(2, 3))
    return Image.fromarray(np.where(wave[..., None], c1, c2).astype(np.uint8), mode="RGB")


def make_images(folder: Path, n: int, size: int = 32, fmt: str = "png", start: int = 0) -> list[Path]:
    """``n`` files ``img_00000.<fmt>``... in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + n):
        path = folder / f"img_{i:05d}.{fmt}"
        image(i, size).save(path)
        paths.append(path)
    return paths


# -- files that are small but cost much to decode (issue #11), built byte by byte -------------

def encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _ifd_entry(tag: int, kind: int, count: int, value: int) -> bytes:
    """One little-endian TIFF IFD entry; ``kind`` 3 = SHORT, 4 = LONG (inline value or offset)."""
    if kind == 3 and count == 1:
        return struct.pack("<HHIHH", tag, kind, count, value, 0)
    return struct.pack("<HHII", tag, kind, count, value)


def tiff_strips(width: int, height: int, strips: int, *, tiled: bool = False) -> bytes:
    """A grey uncompressed TIFF with ``strips`` strips (or 16x16 tiles), all sharing one data block.

    Past the count the size needs, Pillow wraps round and decodes the image again for every
    extra strip; one row per strip of a narrow image is a legal layout that still costs one
    decoder call per strip.
    """
    if tiled:
        rows, block = 16, 256
        layout = [(322, 3, 1, 16), (323, 3, 1, 16), (324, 4, strips, 0), (325, 3, strips, 1)]
    else:
        rows = max(1, -(-height // strips))
        block = rows * width
        layout = [(273, 4, strips, 0), (278, 4, 1, rows), (279, 3, strips, 1)]
    tags = sorted([(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1),
                   (262, 3, 1, 1), (277, 3, 1, 1), *layout])
    offsets_at = 8 + 2 + 12 * len(tags) + 4
    counts_at = offsets_at + 4 * strips
    data_at = counts_at + 2 * strips
    arrays = {0: offsets_at, 1: counts_at}  # placeholders in ``layout`` -> where the arrays live
    entries = b"".join(_ifd_entry(t, k, c, arrays[v] if c > 1 or t in (273, 324) else v)
                       for t, k, c, v in tags)
    return (b"II*\0" + struct.pack("<IH", 8, len(tags)) + entries + struct.pack("<I", 0)
            + struct.pack(f"<{strips}I", *([data_at] * strips))
            + struct.pack(f"<{strips}H", *([block] * strips)) + bytes(range(256)) * (block // 256 + 1))


def tiff_many_ifds(count: int) -> bytes:
    """A TIFF of ``count`` 1x1 grey pages chained one after another (counting them walks them all)."""
    tags = [(256, 3, 1, 1), (257, 3, 1, 1), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
            (273, 4, 1, 0), (277, 3, 1, 1), (278, 3, 1, 1), (279, 3, 1, 1)]
    size = 2 + 12 * len(tags) + 4
    out = [b"II*\0", struct.pack("<I", 8)]
    for page in range(count):
        here = 8 + page * (size + 2)
        pixel_at = here + size
        nxt = here + size + 2 if page + 1 < count else 0
        entries = b"".join(_ifd_entry(t, k, c, pixel_at if t == 273 else v) for t, k, c, v in tags)
        out.append(struct.pack("<H", len(tags)) + entries + struct.pack("<I", nxt) + b"\x80\0")
    return b"".join(out)


def jpeg_many_scans(size: int, scans: int) -> bytes:
    """A progressive JPEG of a ``size`` x ``size`` colour ramp whose smallest scan is repeated
    until it has ``scans`` scans.

    libjpeg decodes every repeated scan again (it only warns about the bogus progression), and
    a smooth image's AC scans are a few bytes each. In entropy-coded data 0xFF is always
    stuffed, so ``FF DA`` only ever marks a real start of scan.
    """
    ramp = np.linspace(0, 255, size, dtype=np.float64)
    grey = (ramp[None, :] * 0.5 + ramp[:, None] * 0.5).astype(np.uint8)
    base = encode(Image.fromarray(np.dstack([grey, grey[::-1], grey.T])), "JPEG", progressive=True)
    end = base.rfind(b"\xff\xd9")
    starts = [i for i in range(len(base) - 1) if base[i:i + 2] == b"\xff\xda"] + [end]
    pieces = [base[a:b] for a, b in zip(starts, starts[1:], strict=False)]
    # a piece is SOS + data, maybe followed by the tables of the next scan: take a bare one
    smallest = min((p for p in pieces if b"\xff\xc4" not in p[2:]), key=len)
    return base[:end] + smallest * max(0, scans - len(pieces)) + base[end:]


def jpeg_segments(count: int) -> bytes:
    """A small baseline JPEG with ``count`` empty comment segments after SOI (Pillow reads every
    segment before the image in Python)."""
    base = encode(image(0, 16), "JPEG")
    return base[:2] + b"\xff\xfe\x00\x02" * count + base[2:]


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_16bit(width: int, height: int) -> bytes:
    """A 16-bit grey PNG (a smooth ramp, so it compresses to a few KB at any size)."""
    ramp = (np.arange(width, dtype=np.uint32) * 65535 // max(1, width - 1)).astype(np.uint16)
    return encode(Image.fromarray(np.broadcast_to(ramp, (height, width)).copy()), "PNG")


def png_chunks(count: int, *, kind: bytes = b"tEXt", split_idat: bool = False) -> bytes:
    """A 1x1 PNG with ``count`` small ``kind`` chunks before its data, or its data split into
    ``count`` IDAT chunks of one byte (each chunk is a Python-level step in Pillow)."""
    ihdr = png_chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    stream = zlib.compress(b"\0\x80")
    if split_idat:
        pad = [png_chunk(b"IDAT", b"")] * max(0, count - len(stream))
        idat = b"".join([png_chunk(b"IDAT", stream[i:i + 1]) for i in range(len(stream))] + pad)
        return b"\x89PNG\r\n\x1a\n" + ihdr + idat + png_chunk(b"IEND", b"")
    extra = png_chunk(kind, b"k\0v") * count
    return b"\x89PNG\r\n\x1a\n" + ihdr + extra + png_chunk(b"IDAT", stream) + png_chunk(b"IEND", b"")


def png_ztxt(count: int, inflated: int) -> bytes:
    """A 1x1 PNG with ``count`` zTXt chunks that each inflate to ``inflated`` bytes."""
    text = png_chunk(b"zTXt", b"k\0\0" + zlib.compress(b"a" * inflated, 9))
    base = png_chunks(0)
    at = base.index(b"IDAT") - 4
    return base[:at] + text * count + base[at:]


def _gif(body: bytes) -> bytes:
    """A 1x1 GIF89a with a two-colour table, ``body`` before its one frame."""
    head = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    frame = b"," + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return head + body + frame + b";"


def gif_comment(size: int) -> bytes:
    """A 1x1 GIF whose comment extension holds ``size`` bytes in 255-byte sub-blocks."""
    full, rest = divmod(size, 255)
    blocks = (b"\xff" + b"c" * 255) * full + (bytes([rest]) + b"c" * rest if rest else b"")
    return _gif(b"!\xfe" + blocks + b"\0")


def gif_junk(size: int) -> bytes:
    """A 1x1 GIF with ``size`` bytes that are no GIF block before its frame (Pillow steps over
    them one by one)."""
    return _gif(b"\x07" * size)


def gif_frames(count: int) -> bytes:
    """A 1x1 GIF with ``count`` frames."""
    head, frame = _gif(b"")[:19], _gif(b"")[19:-1]
    return head + frame * count + b";"


def bmp_rle_eol(count: int) -> bytes:
    """A 1x1 RLE8 BMP whose data is ``count`` end-of-line codes (Pillow's decoder is Python)."""
    rle = b"\x00\x00" * count + b"\x01\x05\x00\x01"
    header_size, palette = 40, b"\0\0\0\0" * 256
    offset = 14 + header_size + len(palette)
    info = struct.pack("<IiiHHIIiiII", header_size, 1, 1, 1, 8, 1, len(rle), 2835, 2835, 256, 0)
    return b"BM" + struct.pack("<IHHI", offset + len(rle), 0, 0, offset) + info + palette + rle
