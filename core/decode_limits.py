"""Bound the decode work of an encoded image by its pixel count, before Pillow touches it.

The pixel cap in :mod:`core.images` sees only the size a header claims. These checks walk the
file's structure (never its pixels) and refuse layouts whose cost is not proportional to that
size: TIFF strip/tile tables, JPEG scans and segments, PNG chunks, GIF blocks before the first
frame and BMP run-length codes (decoded in Python by Pillow). Each walk costs at most one
step per structure it counts, so a refusal is itself cheap.
"""

from __future__ import annotations

import re
import struct

from core.errors import InvalidImageError

# TIFF: Pillow makes one Python-level decoder call per strip/tile (~7 us, ~360 bytes each), so a
# strip must stand for at least 256 pixels (per plane); any image keeps up to 4096 strips. Tiles
# are at least 16x16 by the TIFF spec, which the tile bound allows exactly.
TIFF_MIN_BLOCKS = 4096
TIFF_PIXELS_PER_STRIP = 256
TIFF_MIN_TILE = 16
# JPEG: libjpeg's standard progressive script has 10 scans (6 for grey), encoders that tune the
# script stay in the tens; each scan revisits every coefficient of the image, so 100 scans bound
# the work at ~10x a normal progressive file. Segments (tables, APPn, COM) stay far below 2000.
JPEG_MAX_SCANS = 100
JPEG_MAX_SEGMENTS = 2000
# PNG: each chunk is a Python-level step in Pillow (~4 us); encoders write 8-64 KB IDAT chunks.
PNG_MIN_CHUNKS = 4096
PNG_PIXELS_PER_CHUNK = 256
# GIF: blocks before the first frame are read by Python loops, 4096 blocks is <= 1 MB of
# metadata. Comments are joined block by block, which is quadratic: 256 blocks (<= 64 KB of
# comment) keep that under a millisecond (a 1 MB comment took 0.6 s, 10 MB 92 s). Stray
# bytes between blocks are not GIF at all.
GIF_MAX_SUBBLOCKS = 4096
GIF_MAX_COMMENT_BLOCKS = 256
GIF_MAX_STRAY_BYTES = 64

_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")  # FF + a marker byte (not stuffing/RST/fill)
_JPEG_STANDALONE = frozenset({0x01, 0xD8})  # TEM, SOI: no length field


def check_structure(data: bytes, name: str, max_pixels: int) -> None:
    """Refuse ``data`` when its structure would make decoding cost more than its pixels do.

    Args:
        data: the encoded file.
        name: how to name the input in errors.
        max_pixels: the caller's pixel cap (bounds are computed for at most this many pixels).

    Raises:
        InvalidImageError: naming the structure that is too large (strip count, tile count,
            scan count, segment count, chunk count, GIF blocks, RLE data) and its limit.
    """
    head = data[:8]
    if head[:2] == b"\xff\xd8":
        _check_jpeg(data, name)
    elif head == b"\x89PNG\r\n\x1a\n":
        _check_png(data, name, max_pixels)
    elif head[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        _check_tiff(data, name, max_pixels)
    elif head[:6] in (b"GIF87a", b"GIF89a"):
        _check_gif(data, name)
    elif head[:2] == b"BM":
        _check_bmp_rle(data, name, max_pixels)


def _refuse(name: str, what: str, found: int, limit: int, why: str) -> InvalidImageError:
    return InvalidImageError(
        name, f"{what} {found:,} is over the limit of {limit:,} {why}; decoding it would cost far "
        "more than its pixels (re-save the image with a standard encoder to fix it)")


def _check_jpeg(data: bytes, name: str) -> None:
    """Walk the markers of the first image (up to EOI), skipping segment bodies and entropy data."""
    pos, scans, segments, end = 2, 0, 0, len(data)
    while (found := _JPEG_MARKER.search(data, pos)) is not None:
        marker, pos = data[found.end() - 1], found.end()
        if marker == 0xD9:  # EOI (an MPO's later images are never decoded)
            return
        segments += 1
        if segments > JPEG_MAX_SEGMENTS:
            raise _refuse(name, "JPEG segment count", segments, JPEG_MAX_SEGMENTS, "markers")
        if marker in _JPEG_STANDALONE or pos + 2 > end:
            continue
        if marker == 0xDA:
            scans += 1
            if scans > JPEG_MAX_SCANS:
                raise _refuse(name, "JPEG scan count", scans, JPEG_MAX_SCANS,
                              "scans (a normal progressive JPEG has about 10)")
        pos += int.from_bytes(data[pos:pos + 2], "big")


def _check_png(data: bytes, name: str, max_pixels: int) -> None:
    if len(data) < 24:
        return
    width, height = struct.unpack_from(">II", data, 16)
    limit = max(PNG_MIN_CHUNKS, min(width * height, max_pixels) // PNG_PIXELS_PER_CHUNK)
    pos, chunks = 8, 0
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        chunks += 1
        if chunks > limit:
            raise _refuse(name, "PNG chunk count", chunks, limit,
                          f"chunks for {width}x{height} pixels")
        if kind == b"IEND":
            return
        pos += 12 + length


def _check_gif(data: bytes, name: str) -> None:
    """Walk the blocks before the first image descriptor (what Pillow reads in Python on open)."""
    if len(data) < 13:
        return
    pos = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    blocks = comments = stray = 0
    while pos < len(data):
        kind = data[pos]
        if kind in (0x2C, 0x3B):  # image descriptor / trailer: Pillow's decoder is C from here
            return
        if kind != 0x21:
            stray += 1
            if stray > GIF_MAX_STRAY_BYTES:
                raise _refuse(name, "GIF stray byte count", stray, GIF_MAX_STRAY_BYTES,
                              "bytes that are no GIF block")
            pos += 1
            continue
        comment = pos + 1 < len(data) and data[pos + 1] == 0xFE
        pos += 2  # introducer and label, then sub-blocks up to a zero length
        while True:
            blocks += 1
            comments += comment
            if blocks > GIF_MAX_SUBBLOCKS:
                raise _refuse(name, "GIF metadata block count", blocks, GIF_MAX_SUBBLOCKS,
                              "blocks before the first frame")
            if comments > GIF_MAX_COMMENT_BLOCKS:
                raise _refuse(name, "GIF comment block count", comments, GIF_MAX_COMMENT_BLOCKS,
                              "comment blocks (Pillow joins them in quadratic time)")
            if pos >= len(data) or not data[pos]:
                break
            pos += data[pos] + 1
        pos += 1


def _check_bmp_rle(data: bytes, name: str, max_pixels: int) -> None:
    """RLE8/RLE4 BMPs: Pillow decodes one Python step per 2-byte code, so codes <= pixels + rows."""
    if len(data) < 34:
        return
    offset, = struct.unpack_from("<I", data, 10)
    width, height, _, _, compression = struct.unpack_from("<iiHHI", data, 18)
    if compression not in (1, 2):
        return
    pixels = min(abs(width) * abs(height), max_pixels)
    limit = 2 * (pixels + abs(height)) + 64
    if len(data) - offset > limit:
        raise _refuse(name, "BMP run-length data size", len(data) - offset, limit,
                      f"bytes for {abs(width)}x{abs(height)} pixels (2 bytes per pixel and row)")


def _check_tiff(data: bytes, name: str, max_pixels: int) -> None:
    """Compare the first IFD's strip/tile table with what its size needs and its pixels allow."""
    tags = _tiff_first_ifd(data)
    if tags is None:
        return
    width, height = tags.get(256, (0, 0))[1], tags.get(257, (0, 0))[1]
    if width < 1 or height < 1:
        return
    planes = tags.get(277, (1, 1))[1] if tags.get(284, (1, 1))[1] == 2 else 1
    pixels = min(width * height, max_pixels)
    if 324 in tags or 322 in tags:
        what, count = "TIFF tile count", tags.get(324, (0, 0))[0]
        tw, th = tags.get(322, (0, 0))[1], tags.get(323, (0, 0))[1]
        if tw < 1 or th < 1:
            return  # Pillow refuses the missing tile size itself
        needed = -(-width // tw) * -(-height // th) * planes
        cap = max(TIFF_MIN_BLOCKS, planes * -(-pixels // (TIFF_MIN_TILE * TIFF_MIN_TILE)))
    else:
        what, count = "TIFF strip count", tags.get(273, (0, 0))[0]
        rows = min(max(tags.get(278, (1, height))[1], 1), height)
        needed = -(-height // rows) * planes
        cap = max(TIFF_MIN_BLOCKS, planes * pixels // TIFF_PIXELS_PER_STRIP)
    if count > needed:
        raise _refuse(name, what, count, needed, f"that a {width}x{height} image with this layout needs")
    if count > cap:
        raise _refuse(name, what, count, cap, f"for {width}x{height} pixels")


_TIFF_TYPES = {1: "B", 3: "H", 4: "I", 16: "Q"}  # BYTE, SHORT, LONG, LONG8: what sizes use


def _tiff_first_ifd(data: bytes) -> dict[int, tuple[int, int]] | None:
    """``{tag: (count, first value)}`` of the first IFD (value 0 when stored out of line)."""
    try:
        order = "<" if data[:2] == b"II" else ">"
        big = struct.unpack_from(order + "H", data, 2)[0] == 43
        ifd = struct.unpack_from(order + ("Q" if big else "I"), data, 8 if big else 4)[0]
        n = struct.unpack_from(order + ("Q" if big else "H"), data, ifd)[0]
        size, field = (20, 8) if big else (12, 4)
        start = ifd + (8 if big else 2)
        tags: dict[int, tuple[int, int]] = {}
        for i in range(min(n, 65535)):
            at = start + i * size
            tag, kind = struct.unpack_from(order + "HH", data, at)
            count = struct.unpack_from(order + ("Q" if big else "I"), data, at + 4)[0]
            code = _TIFF_TYPES.get(kind)
            value = 0
            if code and count * struct.calcsize(code) <= field:
                value = struct.unpack_from(order + code, data, at + 4 + field)[0]
            tags[tag] = (count, value)
        return tags
    except struct.error:
        return None  # truncated header: Pillow reports it as corrupt
