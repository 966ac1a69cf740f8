"""Tiny COCO: download the published archive, extract it safely, verify and describe a data folder.

The archive is the published GitHub snapshot of Tiny COCO; it unpacks to
``tiny_coco_dataset-master/tiny_coco/{annotations,train2017,val2017}``. Extraction refuses the
whole archive if any member would land outside DEST (``../``, absolute paths, links), before
writing anything. ``img2text data tiny-coco`` and ``img2text data check`` are built on this.
"""

from __future__ import annotations

import functools
import http.client
import shutil
import stat
import sys
import urllib.error
import urllib.request
import warnings
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any

from core.datasets.base import DatasetNotFoundError
from core.datasets.discover import find_dataset
from core.errors import DatasetError
from core.fileio import atomic_write

TINY_COCO_URL = "https://github.com/lizhogn/tiny_coco_dataset/archive/refs/heads/master.zip"
SPLITS = ("train2017", "val2017")
EXPECTED_IMAGES = 50  # per split in the published archive
MAX_DOWNLOAD_BYTES = 1 << 30  # the archive is ~20 MB; refuse anything wildly larger
MAX_EXTRACTED_BYTES = 2 << 30  # zip-bomb guard on the declared uncompressed sizes
# Where a dataset root may sit under DEST once the archive is unpacked.
_ROOT_CANDIDATES = (
    "tiny_coco_dataset-master/tiny_coco",
    "tiny_coco",
    "tiny_coco_dataset-master",
    ".",
)
_OFFLINE_HINT = "check the network, or download it by hand and pass --archive FILE"


# ------------------------------------------------------------------------------ download
def _copy_capped(response: Any, fh: Any, url: str, total: int | None, progress: bool) -> None:
    """Stream ``response`` into ``fh`` in 64 KiB blocks, refusing more than MAX_DOWNLOAD_BYTES.

    Raises:
        DatasetError: more than MAX_DOWNLOAD_BYTES, or fewer bytes than ``total`` announced.
    """
    from tqdm import tqdm

    done = 0
    with tqdm(total=total, unit="B", unit_scale=True, desc="download", disable=not progress,
              file=sys.stderr) as bar:
        while block := response.read(1 << 16):
            done += len(block)
            if done > MAX_DOWNLOAD_BYTES:
                raise DatasetError(f"{url}: more than {MAX_DOWNLOAD_BYTES:,} bytes; not Tiny COCO")
            fh.write(block)
            bar.update(len(block))
    if total is not None and done != total:  # http.client's read(n) ends quietly at a closed connection
        raise DatasetError(f"cannot download {url}: the connection closed after {done:,} of {total:,} bytes; "
                           f"{_OFFLINE_HINT}")


def download(url: str, dest: Path, *, timeout: float = 60.0, progress: bool = True) -> Path:
    """Fetch ``url`` into the file ``dest`` atomically (:func:`core.fileio.atomic_write`).

    The bytes go to a hidden temporary file next to ``dest``, are fsync'ed, and only a complete
    download is renamed to ``dest``; a crash or a failure leaves no partial ``dest``.

    Args:
        url: the archive's address.
        dest: the file to create.
        timeout: network timeout in seconds.
        progress: show a byte progress bar on stderr.

    Returns:
        ``dest``.

    Raises:
        DatasetError: any network or HTTP failure (a connection cut mid-way included), or an
            oversized download; the message says what failed and how to proceed offline. No
            temporary file is left behind.
    """

    def fetch(tmp: Path) -> None:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (user's URL)
            total = int(response.headers.get("Content-Length") or 0) or None
            if total is not None and total > MAX_DOWNLOAD_BYTES:
                raise DatasetError(f"{url}: {total:,} bytes is too large for Tiny COCO")
            with tmp.open("wb") as fh:
                _copy_capped(response, fh, url, total, progress)

    try:
        atomic_write(dest, fetch)
    except urllib.error.HTTPError as exc:
        raise DatasetError(f"cannot download {url}: HTTP {exc.code} {exc.reason}; {_OFFLINE_HINT}") from exc
    except (urllib.error.URLError, TimeoutError, OSError, http.client.HTTPException) as exc:
        # HTTPException: a server that does not speak HTTP (BadStatusLine, LineTooLong, ...)
        reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
        raise DatasetError(f"cannot download {url}: {reason}; {_OFFLINE_HINT}") from exc
    return dest


# ------------------------------------------------------------------------------ extract
def safe_member_target(dest: Path, info: zipfile.ZipInfo) -> Path:
    """Where a zip member goes inside ``dest``.

    Raises:
        DatasetError: the member would escape ``dest`` (``../``, absolute, a drive) or is a link.
    """
    name = info.filename.replace("\\", "/")
    parts = PurePosixPath(name).parts
    escapes = (
        name.startswith("/")
        or ".." in parts
        or (parts and parts[0].endswith(":"))  # a Windows drive such as C:
    )
    if stat.S_ISLNK(info.external_attr >> 16):
        raise DatasetError(f"archive member {info.filename!r} is a symbolic link; refusing to extract")
    target = (dest / name).resolve()
    root = dest.resolve()
    if escapes or (target != root and root not in target.parents):
        raise DatasetError(
            f"archive member {info.filename!r} would be written outside {dest}; refusing to extract"
        )
    return target


def _copy_member(zf: zipfile.ZipFile, member: zipfile.ZipInfo, out: Path) -> None:
    """Copy one member's bytes to ``out``.

    Raises:
        DatasetError: the member's data is damaged (bad CRC, cut short, bad compressed data).
    """
    try:
        with zf.open(member) as src, out.open("wb") as fh:
            shutil.copyfileobj(src, fh)
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise DatasetError(f"{zf.filename}: member {member.filename!r} is damaged ({exc}); "
                           "download the archive again") from exc


def extract_zip(archive: Path, dest: Path) -> int:
    """Extract ``archive`` into ``dest`` after checking every member; returns the file count.

    Each file is written atomically (:func:`core.fileio.atomic_write`), so an interrupted
    extraction leaves whole files or none, never a torn image that verification would accept.

    Raises:
        DatasetError: not a zip, an unsafe member (nothing is written then), too large, or a
            damaged member (the files before it stay extracted, each one whole).
    """
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DatasetError(f"{archive}: not a readable zip archive ({exc})") from exc
    with zf:
        members = zf.infolist()
        targets = [safe_member_target(dest, m) for m in members]  # all checked before any write
        if sum(m.file_size for m in members) > MAX_EXTRACTED_BYTES:
            raise DatasetError(f"{archive}: expands to more than {MAX_EXTRACTED_BYTES:,} bytes; refusing")
        files = 0
        for member, target in zip(members, targets, strict=True):
            if member.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            atomic_write(target, functools.partial(_copy_member, zf, member))  # no torn file under its name
            files += 1
    return files


# ------------------------------------------------------------------------------ verify
def describe_dataset(root: Path, splits: tuple[str, ...] = SPLITS, *, strict: bool = False) -> dict[str, Any]:
    """Layout and counts of ``root`` per split (via :func:`core.datasets.find_dataset`).

    Returns:
        ``{"root", "splits": {split: {"layout", "images", "with_captions", "with_categories",
        "categories", "warnings"}}}``.

    Raises:
        DatasetNotFoundError: ``root`` is not a folder, or a split has no data set.
        DatasetError: malformed annotations.
    """
    if not root.is_dir():
        raise DatasetNotFoundError(f"data folder not found: {root}")
    out: dict[str, Any] = {"root": str(root), "splits": {}}
    for split in splits:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            info = find_dataset(root, split, strict=strict)
        out["splits"][split] = {
            "layout": info.layout,
            "images": len(info.records),
            "with_captions": sum(1 for r in info.records if r.captions),
            "with_categories": sum(1 for r in info.records if r.categories),
            "categories": len(info.category_names),
            "warnings": [str(w.message) for w in caught],
        }
    return out


def verify_tiny_coco(dest: Path) -> dict[str, Any]:
    """Find the extracted data set under ``dest`` and check both splits are complete.

    Accepts the published layout (``annotations/instances_S.json`` + ``S/``) and the
    notebook's (``annotations/instances.json`` + ``images/S/``).

    Returns:
        The :func:`describe_dataset` report of the data root found.

    Raises:
        DatasetNotFoundError: no ``annotations/`` folder, a missing split or annotation file, or
            annotated images missing on disk (the message names what is missing).
        DatasetError: an annotation file is not valid COCO JSON.
    """
    roots = [dest / rel for rel in _ROOT_CANDIDATES]
    root = next((r for r in roots if (r / "annotations").is_dir()), None)
    if root is None:
        looked = "\n".join(f"  {r / 'annotations'}" for r in roots)
        raise DatasetNotFoundError(f"no annotations folder found under {dest}; looked for:\n{looked}")
    report = describe_dataset(root, SPLITS, strict=True)
    for split, counts in report["splits"].items():
        if counts["layout"] == "folder":
            raise DatasetNotFoundError(
                f"{root}: no instance annotations or image folder for split {split} "
                f"(expected annotations/instances_{split}.json and {split}/)"
            )
        if counts["images"] == 0:
            raise DatasetNotFoundError(f"{root}: split {split} has no images")
        if counts["with_captions"] == 0:
            raise DatasetNotFoundError(f"{root}: split {split} has no captions (captions file missing)")
    return report
