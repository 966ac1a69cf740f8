"""`img2text data tiny-coco DEST` (fetch, extract safely, verify) and `img2text data check DIR`.

The archive is the published GitHub snapshot of Tiny COCO; it unpacks to
``tiny_coco_dataset-master/tiny_coco/{annotations,train2017,val2017}``. Extraction refuses the
whole archive if any member would land outside DEST (``../``, absolute paths, links), before
writing anything.
"""

from __future__ import annotations

import argparse
import json
import shutil
import stat
import sys
import urllib.error
import urllib.request
import warnings
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from tqdm import tqdm

from core.cli import EXIT_OK

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


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``data`` command group (``tiny-coco``, ``check``)."""
    fmt = argparse.ArgumentDefaultsHelpFormatter
    group = sub.add_parser("data", help="get and check data sets", formatter_class=fmt)
    data_sub = group.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")

    p = data_sub.add_parser(
        "tiny-coco",
        help="download, extract and verify Tiny COCO",
        description="Download the published Tiny COCO archive (100 COCO 2017 images with "
        "annotations), extract it safely into DEST and check it.",
        formatter_class=fmt,
    )
    p.add_argument("dest", type=Path, metavar="DEST", help="folder to extract into (created)")
    p.add_argument("--url", default=TINY_COCO_URL, help="archive URL")
    p.add_argument(
        "--archive", type=Path, metavar="ZIP", help="use this local zip instead of downloading"
    )
    p.add_argument("--timeout", type=float, default=60.0, help="network timeout in seconds")
    p.add_argument(
        "--force", action="store_true", help="extract again even if DEST already verifies"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_tiny_coco)

    p = data_sub.add_parser(
        "check",
        help="report which data layout a folder has, and its counts",
        description="Detect the layout of DIR (Tiny COCO, the notebook's "
        "tiny_coco_dataset-master layout, or a plain image folder) and count images and labels.",
        formatter_class=fmt,
    )
    p.add_argument("dir", type=Path, metavar="DIR", help="data folder")
    p.add_argument(
        "--split",
        action="append",
        metavar="S",
        help=f"split(s) to check; None means {', '.join(SPLITS)}",
    )
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    p.set_defaults(func=_run_check)


# ------------------------------------------------------------------------------ download
def download(url: str, dest: Path, *, timeout: float = 60.0, progress: bool = True) -> Path:
    """Fetch ``url`` into the file ``dest`` (via ``dest.part``, renamed when complete).

    Raises:
        ValueError: any network or HTTP failure, or an oversized download; the message says
            what failed and how to proceed offline.
    """
    part = dest.with_name(dest.name + ".part")
    hint = "check the network, or download it by hand and pass --archive FILE"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (user's URL)
            total = int(response.headers.get("Content-Length") or 0) or None
            if total is not None and total > MAX_DOWNLOAD_BYTES:
                raise ValueError(f"{url}: {total:,} bytes is too large for Tiny COCO")
            done = 0
            with (
                part.open("wb") as fh,
                tqdm(
                    total=total,
                    unit="B",
                    unit_scale=True,
                    desc="download",
                    disable=not progress,
                    file=sys.stderr,
                ) as bar,
            ):
                while block := response.read(1 << 16):
                    done += len(block)
                    if done > MAX_DOWNLOAD_BYTES:
                        raise ValueError(
                            f"{url}: more than {MAX_DOWNLOAD_BYTES:,} bytes; not Tiny COCO"
                        )
                    fh.write(block)
                    bar.update(len(block))
    except urllib.error.HTTPError as exc:
        part.unlink(missing_ok=True)
        raise ValueError(f"cannot download {url}: HTTP {exc.code} {exc.reason}; {hint}") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        part.unlink(missing_ok=True)
        reason = getattr(exc, "reason", None) or exc
        raise ValueError(f"cannot download {url}: {reason}; {hint}") from exc
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    part.replace(dest)
    return dest


# ------------------------------------------------------------------------------ extract
def _safe_target(dest: Path, info: zipfile.ZipInfo) -> Path:
    """Where a member goes inside ``dest``; ``ValueError`` if it would escape or is a link."""
    name = info.filename.replace("\\", "/")
    parts = PurePosixPath(name).parts
    escapes = (
        name.startswith("/")
        or ".." in parts
        or (parts and parts[0].endswith(":"))  # a Windows drive such as C:
    )
    if stat.S_ISLNK(info.external_attr >> 16):
        raise ValueError(
            f"archive member {info.filename!r} is a symbolic link; refusing to extract"
        )
    target = (dest / name).resolve()
    root = dest.resolve()
    if escapes or (target != root and root not in target.parents):
        raise ValueError(
            f"archive member {info.filename!r} would be written outside {dest}; refusing to extract"
        )
    return target


def extract_zip(archive: Path, dest: Path) -> int:
    """Extract ``archive`` into ``dest`` after checking every member; returns the file count.

    Raises:
        ValueError: not a zip, an unsafe member (nothing is written then), or too large.
    """
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"{archive}: not a readable zip archive ({exc})") from exc
    with zf:
        members = zf.infolist()
        targets = [_safe_target(dest, m) for m in members]  # all checked before any write
        if sum(m.file_size for m in members) > MAX_EXTRACTED_BYTES:
            raise ValueError(
                f"{archive}: expands to more than {MAX_EXTRACTED_BYTES:,} bytes; refusing"
            )
        files = 0
        for member, target in zip(members, targets, strict=True):
            if member.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as src, target.open("wb") as out:
                shutil.copyfileobj(src, out)
            files += 1
    return files


# ------------------------------------------------------------------------------ verify
def describe_dataset(
    root: Path, splits: tuple[str, ...] = SPLITS, *, strict: bool = False
) -> dict[str, Any]:
    """Layout and counts of ``root`` per split (via ``core.ssl.data.find_dataset``).

    Returns:
        ``{"root", "splits": {split: {"layout", "images", "with_captions", "with_categories",
        "categories", "warnings"}}}``.
    """
    from core.ssl.data import find_dataset

    if not root.is_dir():
        raise FileNotFoundError(f"data folder not found: {root}")
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

    Raises:
        FileNotFoundError: no ``annotations/`` folder, a missing split or annotation file, or
            annotated images missing on disk (the message names what is missing).
        ValueError: an annotation file is not valid COCO JSON.
    """
    roots = [dest / rel for rel in _ROOT_CANDIDATES]
    root = next((r for r in roots if (r / "annotations").is_dir()), None)
    if root is None:
        looked = "\n".join(f"  {r / 'annotations'}" for r in roots)
        raise FileNotFoundError(f"no annotations folder found under {dest}; looked for:\n{looked}")
    report = describe_dataset(root, SPLITS, strict=True)
    for split, counts in report["splits"].items():
        if counts["layout"] == "folder":
            raise FileNotFoundError(
                f"{root}: no instance annotations or image folder for split {split} "
                f"(expected annotations/instances_{split}.json and {split}/)"
            )
        if counts["images"] == 0:
            raise FileNotFoundError(f"{root}: split {split} has no images")
        if counts["with_captions"] == 0:
            raise FileNotFoundError(
                f"{root}: split {split} has no captions (captions file missing)"
            )
    return report


def _format_report(report: dict[str, Any]) -> str:
    lines = [f"data root: {report['root']}"]
    for split, c in report["splits"].items():
        if c["layout"] == "folder":
            lines.append(
                f"  {split}: no annotations found; plain image folder with {c['images']} images"
            )
            continue
        lines.append(
            f"  {split}: layout {c['layout']}, {c['images']} images, {c['with_captions']} with "
            f"captions, {c['with_categories']} with instance categories, {c['categories']} categories"
        )
        lines.extend(f"    warning: {w}" for w in c["warnings"])
    return "\n".join(lines)


def _run_tiny_coco(args: argparse.Namespace) -> int:
    dest: Path = args.dest
    if dest.exists() and not dest.is_dir():
        raise NotADirectoryError(f"DEST exists and is not a folder: {dest}")
    if dest.is_dir() and not args.force:
        try:
            report = verify_tiny_coco(dest)
        except (FileNotFoundError, ValueError):
            pass
        else:
            print(_format_report(report) + "\nalready present (use --force to extract again)")
            return EXIT_OK
    dest.mkdir(parents=True, exist_ok=True)
    if args.archive is not None:
        if not args.archive.is_file():
            raise FileNotFoundError(f"archive not found: {args.archive}")
        archive = args.archive
    else:
        archive = download(
            args.url, dest / "tiny_coco_dataset.zip", timeout=args.timeout, progress=not args.quiet
        )
    files = extract_zip(archive, dest)
    if args.archive is None:
        archive.unlink(missing_ok=True)  # extracted; the zip is only a duplicate now
    report = verify_tiny_coco(dest)
    print(f"extracted {files} files into {dest}")
    print(_format_report(report))
    counts = [c["images"] for c in report["splits"].values()]
    if any(n != EXPECTED_IMAGES for n in counts):
        print(
            f"note: the published archive has {EXPECTED_IMAGES} images per split", file=sys.stderr
        )
    print(f"use it with: --data {report['root']}")
    return EXIT_OK


def _run_check(args: argparse.Namespace) -> int:
    splits = tuple(args.split) if args.split else SPLITS
    report = describe_dataset(args.dir, splits)
    if args.format == "json":
        print(json.dumps(report, indent=2))
    else:
        print(_format_report(report))
    return EXIT_OK
