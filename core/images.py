"""Image input rules: turn anything a user may hand us into a bounded RGB ``PIL.Image``.

Accepted: a path (``str`` / ``Path``), ``bytes``, a binary file object, a ``PIL.Image`` or an
``(H, W, 3)`` ``uint8`` NumPy array. Only raster formats that people upload are decoded (JPEG,
PNG, WebP, GIF, BMP, TIFF); the pixel cap is checked from the header, before any pixel is
allocated, so decompression bombs fail fast, and :mod:`core.decode_limits` refuses files whose
structure (strips, scans, chunks...) would cost more to decode than their pixels. High bit depth
is converted in bands of rows, within a few bytes a pixel. Every failure is an
:class:`InvalidImageError`.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.decode_limits import check_structure
from core.errors import InvalidImageError

ImageInput = str | os.PathLike | bytes | bytearray | memoryview | IO[bytes] | Image.Image | np.ndarray

DEFAULT_MAX_PIXELS = 40_000_000  # ~40 MP: a large phone photo fits, a decompression bomb does not.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024  # encoded size cap for paths, bytes and file objects.

# Pillow format names we agree to decode (the JPEG opener also yields MPO camera files).
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
)


def describe(src: Any) -> str:
    """A short human name for an input, used at the start of every error message."""
    if isinstance(src, (str, os.PathLike)):
        return os.fspath(src)  # type: ignore[return-value]
    if isinstance(src, (bytes, bytearray, memoryview)):
        return f"<bytes: {len(src)} bytes>"
    if isinstance(src, Image.Image):
        return f"<PIL.Image mode={src.mode} size={src.size[0]}x{src.size[1]}>"
    if isinstance(src, np.ndarray):
        return f"<array shape={tuple(src.shape)} dtype={src.dtype}>"
    name = getattr(src, "name", None)
    if isinstance(name, str):
        return name
    return f"<{type(src).__name__}>"


def load_image(
    src: ImageInput,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Image.Image:
    """Load ``src`` as an RGB image, applying EXIF orientation and taking the first frame.

    Args:
        src: a path, encoded bytes, a binary file object, a PIL image or an HxWx3 uint8 array.
        max_pixels: refuse images with more pixels than this (checked before decoding).
        max_bytes: refuse encoded inputs larger than this many bytes.

    Returns:
        A fully loaded ``PIL.Image`` in mode ``"RGB"``.

    Raises:
        InvalidImageError: for anything that is not a usable image; the message names the input.
    """
    name = describe(src)
    if isinstance(src, np.ndarray):
        return _from_array(src, name, max_pixels)
    if isinstance(src, Image.Image):
        _check_pixels(src.size, name, max_pixels)
        return _to_rgb(_first_frame(src, name), name)
    data = _read_encoded(src, name, max_bytes)
    return _decode(data, name, max_pixels)


def _read_encoded(src: Any, name: str, max_bytes: int) -> bytes:
    if isinstance(src, (str, os.PathLike)):
        path = Path(src)
        if not path.exists():
            raise InvalidImageError(name, "file not found")
        if not path.is_file():
            raise InvalidImageError(name, "not a regular file")
        size = path.stat().st_size
        if size > max_bytes:
            raise InvalidImageError(name, f"file is {size:,} bytes, over the {max_bytes:,}-byte limit")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InvalidImageError(name, f"cannot read file ({exc.strerror or exc})") from exc
    elif isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
    elif hasattr(src, "read"):
        try:
            data = src.read(max_bytes + 1)
        except Exception as exc:  # a broken stream is the caller's input, not our crash
            raise InvalidImageError(name, f"cannot read stream ({exc})") from exc
        if not isinstance(data, (bytes, bytearray)):
            raise InvalidImageError(name, "file object must be opened in binary mode")
        data = bytes(data)
    else:
        raise InvalidImageError(
            name,
            "unsupported input type; pass a path, bytes, a binary file object, "
            "a PIL.Image or an HxWx3 uint8 numpy array",
        )
    if len(data) == 0:
        raise InvalidImageError(name, "empty input (0 bytes)")
    if len(data) > max_bytes:
        raise InvalidImageError(name, f"input is over the {max_bytes:,}-byte limit")
    return data


def _decode(data: bytes, name: str, max_pixels: int) -> Image.Image:
    check_structure(data, name, max_pixels)
    try:
        with warnings.catch_warnings():
            # Our own cap below is the rule; Pillow's bomb warning would only add noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError as exc:
        raise InvalidImageError(
            name, "not a supported image (expected JPEG, PNG, WebP, GIF, BMP or TIFF)"
        ) from exc
    except Image.DecompressionBombError as exc:
        raise InvalidImageError(name, _bomb_reason(exc, max_pixels)) from exc
    except Exception as exc:
        # A boundary on purpose: on a hostile header Pillow's plugins raise SyntaxError,
        # struct.error, IndexError, KeyError, ValueError, OSError, EOFError, ... - always this
        # input's fault, so always InvalidImageError (fuzzed: tests/reliability/test_fuzz_load_image.py).
        raise InvalidImageError(name, f"corrupt image header ({exc})") from exc
    _check_pixels(img.size, name, max_pixels)
    return _to_rgb(_first_frame(img, name), name)


def _bomb_reason(exc: Image.DecompressionBombError, max_pixels: int) -> str:
    """Pillow refuses > 2 x ``Image.MAX_IMAGE_PIXELS`` inside ``open``; report it with our limit."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    claimed = f"{int(found.group(1)):,} pixels" if found else "more pixels than Pillow decodes"
    pillow_limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
    if max_pixels < pillow_limit:
        return f"image is {claimed}, over the limit of {max_pixels:,} (size read from its header)"
    return (f"image is {claimed}, over the limit of {pillow_limit:,} that Pillow enforces "
            "(PIL.Image.MAX_IMAGE_PIXELS x 2) whatever max_pixels says")


def _check_pixels(size: tuple[int, int], name: str, max_pixels: int) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise InvalidImageError(name, f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise InvalidImageError(
            name,
            f"image is {width}x{height} = {width * height:,} pixels, over the limit of "
            f"{max_pixels:,} (raise max_pixels to allow it)",
        )


def _first_frame(img: Image.Image, name: str) -> Image.Image:
    try:
        # Never ask n_frames / is_animated: for GIF and TIFF they walk every frame of the file.
        if img.tell() != 0:
            img.seek(0)
        img.load()
        # In place: the default returns a copy of every image, turned or not (12% of a load).
        ImageOps.exif_transpose(img, in_place=True)
        return img
    except InvalidImageError:
        raise
    except Exception as exc:  # truncated data, bad chunks, decoder errors
        raise InvalidImageError(name, f"corrupt or truncated image data ({exc})") from exc


def _to_rgb(img: Image.Image, name: str) -> Image.Image:
    try:
        mode = img.mode
        if mode == "RGB":
            return img
        if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
            return _high_depth_to_rgb(img)
        has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
            mode in ("P", "L", "RGB", "1") and "transparency" in img.info
        )
        if has_alpha:
            rgba = img.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(white, rgba).convert("RGB")
        return img.convert("RGB")
    except Exception as exc:
        # A boundary on purpose, like the one in _decode: converting a lazily decoded hostile file
        # can raise any of Pillow's decoder errors; they are this input's fault, not a crash.
        raise InvalidImageError(name, f"cannot convert mode {img.mode!r} to RGB ({exc})") from exc


_BAND_PIXELS = 1 << 20  # high-depth conversion works on bands of about this many pixels


def _high_depth_to_rgb(img: Image.Image) -> Image.Image:
    """16/32-bit grey (``I;16*``, ``I``, ``F``) to RGB: values scaled to 0-255 and rounded.

    The arithmetic is float64 as it always was, but per band of rows, so the peak is the
    source image, the 8-bit result and its RGB copy (~7 bytes a pixel for ``I;16``) plus one
    band, not a float64 copy of the whole image.
    """
    width, height = img.size
    rows = max(1, _BAND_PIXELS // width)
    full = np.asarray(img) if height <= rows else None  # small images: one band
    if img.mode == "F":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN band has no maximum
            peaks = [float(np.nanmax(_band(img, full, r, rows))) for r in range(0, height, rows)]
        peak = max((p for p in peaks if not np.isnan(p)), default=float("nan"))
        top = 1.0 if peak <= 1.0 else 255.0  # all NaN compares False: 255, as before
    else:
        # 16-bit data lives in I;16 and, after some conversions, in 32-bit "I".
        peak = max(float(_band(img, full, r, rows).max()) for r in range(0, height, rows))
        top = 65535.0 if peak > 255 else 255.0
    out = np.empty((height, width), np.uint8)
    for r in range(0, height, rows):
        band = np.nan_to_num(_band(img, full, r, rows).astype(np.float64))
        with np.errstate(over="ignore"):  # +inf became float max: it overflows to inf, clips to 255
            out[r:r + rows] = np.clip(band / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(out).convert("RGB")


def _band(img: Image.Image, full: np.ndarray | None, top: int, rows: int) -> np.ndarray:
    if full is not None:
        return full[top:top + rows]
    return np.asarray(img.crop((0, top, img.size[0], min(top + rows, img.size[1]))))


def _from_array(arr: np.ndarray, name: str, max_pixels: int) -> Image.Image:
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise InvalidImageError(name, "array must have shape (height, width, 3)")
    if arr.dtype != np.uint8:
        raise InvalidImageError(name, "array dtype must be uint8 (values 0-255)")
    _check_pixels((arr.shape[1], arr.shape[0]), name, max_pixels)
    return Image.fromarray(np.ascontiguousarray(arr))


def iter_image_files(paths: Iterable[str | os.PathLike], *, recursive: bool = True) -> Iterator[Path]:
    """Yield image files from files and folders, in a stable (sorted) order.

    Files named explicitly are yielded whatever their extension (the loader decides);
    folders contribute only files with an image extension.
    """
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            for child in sorted(path.glob(pattern)):
                if child.is_file() and child.suffix.lower() in IMAGE_EXTENSIONS:
                    yield child
        else:
            yield path
