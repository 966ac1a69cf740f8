"""JPEG files straight to ``uint8`` tensors on the model's device (nvJPEG on CUDA, libjpeg on CPU).

Only plain cases take this path: a path or bytes holding a baseline RGB (YCbCr) JPEG with no
EXIF rotation, within the pixel and byte caps. Anything else (PNG, CMYK or grey JPEGs, rotated
photos, corrupt data, oversized files) returns ``None`` here and goes through
:func:`core.images.load_image`, which applies the input rules and words the errors. On CPU,
torchvision and Pillow share libjpeg-turbo, so the pixels are the same as Pillow's.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from core.decode_limits import check_structure
from core.errors import InvalidImageError
from core.images import DEFAULT_MAX_BYTES

_SOI = b"\xff\xd8\xff"  # every JPEG starts with these bytes
_ORIENTATION = 0x0112


def read_plain_jpeg(src: Any, max_pixels: int, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes | None:
    """Encoded bytes when ``src`` is a plain RGB JPEG within the caps, else ``None``."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
    elif isinstance(src, (str, os.PathLike)):
        path = Path(src)
        try:
            if not path.is_file() or path.stat().st_size > max_bytes:
                return None
            data = path.read_bytes()
        except OSError:
            return None
    else:
        return None
    if not data.startswith(_SOI) or len(data) > max_bytes:
        return None
    try:  # too many scans or segments: load_image refuses it with the reason
        check_structure(data, "", max_pixels)
    except InvalidImageError:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:  # reads the header only
                if im.format != "JPEG" or im.mode != "RGB":
                    return None
                width, height = im.size
                if im.getexif().get(_ORIENTATION, 1) != 1:
                    return None
    # Boundary on untrusted bytes: Pillow's header parsers fail in many ways (OSError, SyntaxError,
    # struct.error, ...). This is only a fast-path probe, so any failure means "not a plain JPEG":
    # load_image then decodes it again and reports the problem properly.
    except Exception:
        return None
    if width < 1 or height < 1 or width * height > max_pixels:
        return None
    return data


def decode_jpegs(datas: list[bytes], device: torch.device) -> list[torch.Tensor]:
    """Decode on ``device``; raises ``RuntimeError`` when any stream is corrupt.

    Shape:
        output: one ``(3, H, W)`` ``uint8`` tensor per input, on ``device``.
    """
    from torchvision.io import ImageReadMode, decode_jpeg

    encoded = [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in datas]
    decoded = decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device)
    return list(decoded)
