"""The run manifest (``manifest.json`` in the output folder): finished parts and provenance.

Written atomically after every finished part, so it is always a consistent record. It holds the
task, the source, the settings that decide the results (model, generation options, batch size,
caps, shard size) and what the workers actually loaded (model name, revision, dtype). A resumed
run must ask for the same settings; :func:`plan_resume` decides which shards are still to do.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.datasets.sources import ImageSource
from core.distributed.parts import part_files, part_name, read_part_info
from core.errors import ConfigError, DatasetError, changed_settings
from core.fileio import atomic_write_json, sha256_file

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1


def settings_digest(task: str, source: dict[str, Any], settings: dict[str, Any]) -> str:
    """A short digest of what decides a run's results (stored in every part)."""
    blob = json.dumps({"task": task, "source": source, "settings": settings}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class Manifest:
    """What an output folder holds; see the module docstring."""

    task: str  # "caption" or "embed"
    source: dict[str, Any]  # ImageSource.describe()
    settings: dict[str, Any]  # the settings a resumed run must repeat
    shards: int  # shards in the source
    parts: dict[str, dict[str, Any]] = field(default_factory=dict)  # part name -> shard/rows/errors/sha256
    provenance: list[dict[str, Any]] = field(default_factory=list)  # distinct worker model infos
    complete: bool = False
    format_version: int = FORMAT_VERSION
    source_typed: str = ""  # the source as it was typed (source["location"] is the resolved path)

    @property
    def digest(self) -> str:
        return settings_digest(self.task, self.source, self.settings)

    def save(self, out_dir: str | os.PathLike) -> None:
        atomic_write_json(Path(out_dir) / MANIFEST_NAME, asdict(self))

    @classmethod
    def load(cls, out_dir: str | os.PathLike) -> Manifest | None:
        """The manifest of ``out_dir``, ``None`` when there is none.

        Raises:
            DatasetError: a manifest exists but is unreadable.
        """
        path = Path(out_dir) / MANIFEST_NAME
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**data)
        except (OSError, ValueError, TypeError) as exc:
            raise DatasetError(f"{path}: unreadable run manifest ({exc}); move it away to start over") from exc

    def record(self, index: int, fingerprint: str, rows: int, errors: int, sha256: str) -> None:
        self.parts[part_name(index)] = {"shard": index, "fingerprint": fingerprint, "rows": rows,
                                        "errors": errors, "sha256": sha256}

    def add_provenance(self, info: dict[str, Any]) -> None:
        if info not in self.provenance:
            self.provenance.append(info)

    def totals(self) -> tuple[int, int]:
        """(rows, error rows) over the recorded parts."""
        return (sum(p["rows"] for p in self.parts.values()),
                sum(p["errors"] for p in self.parts.values()))


def plan_resume(
    out_dir: Path, task: str, source: ImageSource, settings: dict[str, Any], *, resume: bool,
    typed: str = "",
) -> tuple[Manifest, list[int]]:
    """The manifest to continue and the shard indices still to do.

    A finished part counts when the manifest lists it with the same shard fingerprint and its file
    has the recorded sha256, or (after a driver crash between writing a part and recording it)
    when an unlisted part file names this run's settings digest and the shard's fingerprint.
    Sources are compared by their resolved location (``typed`` is how this run's was typed, kept
    for messages only).

    Raises:
        ConfigError: the folder holds another run's output (other task, source or settings), an
            unfinished run without ``resume``, or parts but no manifest.
    """
    for tmp in out_dir.glob(".part-*.tmp"):  # left by a driver killed mid-write: never a part
        tmp.unlink(missing_ok=True)
    fresh = Manifest(task, source.describe(), settings, len(source.shards), source_typed=typed)
    old = Manifest.load(out_dir)
    if old is None:
        if part_files(out_dir):
            raise ConfigError(f"{out_dir}: holds part files but no {MANIFEST_NAME}; choose an empty "
                              "output folder (or remove the parts)")
        return fresh, [s.index for s in source.shards]
    _check_same_run(out_dir, old, fresh)
    if not resume and not old.complete:
        raise ConfigError(f"{out_dir}: holds an unfinished run ({len(old.parts)} of {old.shards} parts); "
                          "pass --resume to finish it, or choose another output folder")
    todo = []
    for shard in source.shards:
        name = part_name(shard.index)
        path = out_dir / name
        entry = old.parts.get(name)
        if entry is not None and entry["fingerprint"] != shard.fingerprint:
            raise ConfigError(f"{out_dir}: {name} was made from other input than shard {shard.index} "
                              f"of {source.location} holds now (the source changed); use a new output folder")
        if entry is not None and path.is_file() and sha256_file(path) == entry["sha256"]:
            continue
        info = read_part_info(path) if entry is None else None
        if info is not None and info.settings_digest == fresh.digest and info.fingerprint == shard.fingerprint:
            old.record(shard.index, shard.fingerprint, info.rows, info.errors, sha256_file(path))
            continue
        old.parts.pop(name, None)
        todo.append(shard.index)
    old.complete = not todo
    return old, todo


def _check_same_run(out_dir: Path, old: Manifest, new: Manifest) -> None:
    diffs = []
    if old.task != new.task:
        diffs.append(f"task {old.task!r} vs {new.task!r}")
    for label, a, b in (("source", old.source, new.source), ("settings", old.settings, new.settings)):
        if label == "source" and a.get("location") != b.get("location"):
            diffs.append(f"source location: {_typed(a.get('location'), old.source_typed)} before, "
                         f"{_typed(b.get('location'), new.source_typed)} now")
            a = {k: v for k, v in a.items() if k != "location"}
            b = {k: v for k, v in b.items() if k != "location"}
        diffs += [f"{label} {d}" for d in changed_settings(a, b)]
    if diffs:
        raise ConfigError(f"{out_dir}: holds a run with other settings ({'; '.join(diffs)}); repeat "
                          "those settings to resume, or choose another output folder")


def _typed(location: Any, typed: str) -> str:
    """``'/data/shards/*.tar'`` or, when typed otherwise, ``'/data/shards/*.tar' (typed 'shards/*.tar')``."""
    return f"{location!r}" if not typed or typed == location else f"{location!r} (typed {typed!r})"


def remove_run_files(out: Path) -> list[Path]:
    """Remove what a run wrote in ``out``: the parts its manifest lists, any other part file that
    carries the parts' metadata, temporary parts and the manifest. Other files stay. Returns
    the removed paths."""
    try:
        manifest = Manifest.load(out)
    except DatasetError:  # unreadable: it goes too, with the parts that carry our metadata
        manifest = None
    listed = {out / name for name in manifest.parts} if manifest is not None else set()
    ours = {p for p in part_files(out) if read_part_info(p) is not None}
    doomed = sorted(p for p in listed | ours | set(out.glob(".part-*.tmp")) if p.is_file())
    doomed.append(out / MANIFEST_NAME)
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed
