"""Image sources for batch captioning and embedding: folders, path lists, tar shards, parquet.

One source, one deterministic list of :class:`Shard` objects, read the same way by the local
path (``img2text caption SOURCE``) and by the Ray path (``--ray``), where each shard becomes one
part file of the output:

* a **folder**: image files found recursively (as ``core.images.iter_image_files``), sorted and
  cut into chunks of ``shard_size``; key = the path relative to the folder;
* a **text file of paths**, one per line (blank lines and ``#`` comments skipped; relative paths
  are relative to the list's folder), sorted and chunked the same way; key = the line;
* **webdataset tar shards** given as a glob or a brace pattern (``shards/{00000..00099}.tar``),
  or a folder holding only ``.tar`` files: one shard per tar; image members ``.jpg/.jpeg/.png/.webp``;
  key = the webdataset key (the member name up to the first dot of its base name);
* **parquet**: a file or a folder of ``.parquet`` files, one shard per file, with a path column
  and/or an image-bytes column (the column names are settings; defaults ``path``, ``image``, ``key``).

Reading a shard is in :mod:`core.datasets.shards`.
"""

from __future__ import annotations

import glob
import hashlib
import itertools
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.errors import DatasetError
from core.images import IMAGE_EXTENSIONS, iter_image_files

SOURCE_KINDS = ("auto", "folder", "list", "tar", "parquet")
DEFAULT_SHARD_SIZE = 1000  # images per shard of a folder or list source (one part file each)
LIST_SUFFIXES = (".txt", ".lst", ".list")
_BRACE = re.compile(r"\{([^{}]*)\}")
_RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)$")


@dataclass(frozen=True)
class Columns:
    """Column names of a parquet source."""

    # Column holding an image file path (read from disk when there are no bytes).
    path: str = "path"
    # Column holding encoded image bytes (or a {"bytes", "path"} struct as Hugging Face writes).
    image: str = "image"
    # Column holding the row's key; without it the path, else "<file stem>/<row number>".
    key: str = "key"


@dataclass(frozen=True)
class Shard:
    """One unit of work: a chunk of image paths, one tar file or one parquet file.

    ``index`` names the part file (``part-00000.parquet``); ``fingerprint`` changes when what the
    shard holds changes, so a resumed run can refuse a source that moved under it.
    """

    index: int  # position in the source's shard list
    kind: str  # "paths", "tar" or "parquet"
    location: str  # the tar or parquet file; the folder or list file for "paths"
    keys: tuple[str, ...] = ()  # "paths" only: the key of each image
    paths: tuple[str, ...] = ()  # "paths" only: the file of each image
    columns: Columns = field(default_factory=Columns)  # "parquet" only
    fingerprint: str = ""

    def to_json(self) -> str:
        """The shard as one JSON string (how it travels to Ray workers)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Shard:
        data = json.loads(text)
        data["keys"], data["paths"] = tuple(data["keys"]), tuple(data["paths"])
        data["columns"] = Columns(**data["columns"])
        return cls(**data)


@dataclass(frozen=True)
class ImageSource:
    """A planned source: what it is and its shards, in a fixed order."""

    kind: str  # "folder", "list", "tar" or "parquet"
    location: str  # what the user named
    shards: tuple[Shard, ...]
    shard_size: int  # chunk size of "folder"/"list" sources (recorded for every kind)
    columns: Columns = field(default_factory=Columns)

    def describe(self) -> dict:
        """Provenance of the source, for manifests (a resumed run must name the same source)."""
        out = {"kind": self.kind, "location": self.location, "shards": len(self.shards),
               "shard_size": self.shard_size}
        if self.kind == "parquet":
            out["columns"] = asdict(self.columns)
        return out


def open_source(
    source: str | Path,
    *,
    kind: str = "auto",
    shard_size: int = DEFAULT_SHARD_SIZE,
    columns: Columns | None = None,
    recursive: bool = True,
) -> ImageSource:
    """Plan ``source`` as shards (nothing is decoded; tar and parquet files are only listed).

    Args:
        source: a folder, a text file of paths, a tar glob/brace pattern, a ``.tar`` file, or a
            parquet file or folder.
        kind: one of :data:`SOURCE_KINDS`; ``"auto"`` decides from the name and the folder's files.
        shard_size: images per shard for folder and list sources.
        columns: column names of a parquet source.
        recursive: descend into sub-folders of a folder source.

    Returns:
        The :class:`ImageSource` with its shards in a deterministic order.

    Raises:
        DatasetError: the source does not exist, matches nothing, or its kind can't be told.
    """
    if kind not in SOURCE_KINDS:
        raise DatasetError(f"source kind {kind!r} is unknown; choose one of {', '.join(SOURCE_KINDS)}")
    if shard_size < 1:
        raise DatasetError(f"shard size must be >= 1, got {shard_size}")
    columns = columns or Columns()
    text = str(source)
    if kind == "auto":
        kind = _detect_kind(text)
    if kind == "folder":
        folder = Path(text)
        if not folder.is_dir():
            raise DatasetError(f"{text}: not a folder (a folder source must be a directory of images)")
        files = sorted(iter_image_files([folder], recursive=recursive))
        keys = [f.relative_to(folder).as_posix() for f in files]
        return _path_source("folder", text, keys, [str(f) for f in files], shard_size)
    if kind == "list":
        keys, paths = _read_list(Path(text))
        return _path_source("list", text, keys, paths, shard_size)
    files = expand_pattern(text, ".tar" if kind == "tar" else ".parquet")
    shards = tuple(
        Shard(i, kind, str(f), columns=columns if kind == "parquet" else Columns(),
              fingerprint=_file_fingerprint(f))
        for i, f in enumerate(files)
    )
    return ImageSource(kind, text, shards, shard_size, columns)


def _detect_kind(text: str) -> str:
    path = Path(text)
    if path.is_dir():
        found: set[str] = set()
        for child in path.rglob("*"):
            suffix = child.suffix.lower()
            if suffix in IMAGE_EXTENSIONS:
                return "folder"  # the first image decides: no full walk of a large folder
            found.add(suffix)
        if ".parquet" in found:
            return "parquet"
        if ".tar" in found:
            return "tar"
        return "folder"  # an empty folder: reported as "no images" by the caller's run
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in (".tar", ".parquet"):
            return suffix[1:]
        return "list"
    if _BRACE.search(text) or glob.has_magic(text):
        if text.lower().endswith(".tar"):
            return "tar"
        if text.lower().endswith(".parquet"):
            return "parquet"
        raise DatasetError(f"{text}: a pattern must name .tar or .parquet files (e.g. shards/{{00000..00009}}.tar)")
    raise DatasetError(f"{text}: no such file or folder; give a folder, a list of paths, tar shards "
                       "(a glob or shards/{00000..00099}.tar) or parquet files")


def expand_braces(pattern: str) -> list[str]:
    """``a/{00..02}.tar`` -> ``a/00.tar a/01.tar a/02.tar``; ``{x,y}`` lists; several groups combine.

    Zero padding follows the wider bound, as in bash and webdataset.
    """
    groups: list[list[str]] = []
    pieces: list[str] = []
    last = 0
    for match in _BRACE.finditer(pattern):
        pieces.append(pattern[last:match.start()])
        body = match.group(1)
        found = _RANGE.match(body)
        if found:
            lo, hi = found.groups()
            width = max(len(lo), len(hi)) if lo.startswith("0") or hi.startswith("0") else 0
            step = 1 if int(hi) >= int(lo) else -1
            groups.append([str(n).zfill(width) for n in range(int(lo), int(hi) + step, step)])
        else:
            groups.append(body.split(","))
        last = match.end()
    tail = pattern[last:]
    out = []
    for combo in itertools.product(*groups):
        out.append("".join(p + c for p, c in zip(pieces, combo, strict=True)) + tail)
    return out


def expand_pattern(text: str, suffix: str) -> list[Path]:
    """Files of a tar/parquet source: a file, a folder (recursive), a glob and/or brace pattern.

    Raises:
        DatasetError: nothing matches, or a brace-named file is missing.
    """
    path = Path(text)
    if path.is_dir():
        files = sorted(p for p in path.rglob(f"*{suffix}") if p.is_file())
    elif path.is_file():
        files = [path]
    else:
        files = []
        for name in expand_braces(text):
            if glob.has_magic(name):
                files.extend(Path(p) for p in sorted(glob.glob(name, recursive=True)))
            elif Path(name).is_file():
                files.append(Path(name))
            else:
                raise DatasetError(f"{name}: file not found (named by the pattern {text!r})")
        files = list(dict.fromkeys(files))  # a file named twice is one shard
    if not files:
        raise DatasetError(f"{text}: matches no {suffix} file; check the path or the pattern")
    return files


def _read_list(path: Path) -> tuple[list[str], list[str]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read the list of image paths ({exc})") from exc
    keys = sorted({line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")})
    paths = [k if Path(k).is_absolute() else str(path.parent / k) for k in keys]
    return keys, paths


def _path_source(kind: str, location: str, keys: list[str], paths: list[str], size: int) -> ImageSource:
    shards = []
    for i, start in enumerate(range(0, len(keys), size)):
        chunk_keys, chunk_paths = tuple(keys[start:start + size]), tuple(paths[start:start + size])
        digest = hashlib.sha256("\n".join(chunk_keys).encode()).hexdigest()
        shards.append(Shard(i, "paths", location, chunk_keys, chunk_paths, fingerprint=digest))
    return ImageSource(kind, location, tuple(shards), size)


def _file_fingerprint(path: Path) -> str:
    # Name and size: cheap on millions of files, and what changes when a shard is rewritten.
    return hashlib.sha256(f"{path.name}\n{path.stat().st_size}".encode()).hexdigest()

