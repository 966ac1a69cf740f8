"""Caption result files: text, JSONL, CSV and COCO results JSON; streaming and resumable.

Used by the CLI (``img2text caption --format ... --output ... --resume``) and by the apps'
download buttons, so every front end writes the same files.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from core.errors import ConfigError
from core.fileio import atomic_write_text

FORMATS = ("text", "jsonl", "csv", "coco")


@dataclass(frozen=True)
class CaptionRecord:
    """One captioned input. ``error`` is set (and ``caption`` empty) when it failed."""

    path: str
    caption: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def coco_image_id(path: str) -> int:
    """``.../000000397133.jpg`` -> 397133; ValueError when the stem is not a number."""
    stem = Path(path).stem
    if not stem.isdigit():
        raise ConfigError(f"file name {Path(path).name!r} is not a COCO image id (digits only)")
    return int(stem)


def format_line(record: CaptionRecord, fmt: str) -> str:
    """One record as one complete line of output (``coco`` is written whole, see `write_coco`)."""
    if fmt == "text":
        if "\n" in record.path or "\r" in record.path:
            # PATH<TAB>CAPTION has no escaping: such a name would tear the record in two.
            raise ConfigError("file name contains a line break; use --format jsonl or csv")
        return f"{record.path}\t{record.caption}\n"
    if fmt == "jsonl":
        row: dict[str, Any] = {"path": record.path, "caption": record.caption}
        if record.error is not None:
            row["error"] = record.error
        return json.dumps(row, ensure_ascii=False) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        fields = [record.path, record.caption, record.error or ""]
        # QUOTE_MINIMAL does not quote a lone "\r" (not in the "\n" terminator); readers split there.
        if any("\r" in f for f in fields):
            csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL).writerow(fields)
        else:
            csv.writer(buf, lineterminator="\n").writerow(fields)
        return buf.getvalue()
    raise ConfigError(f"format {fmt!r} is not line based; choose one of text, jsonl, csv")


CSV_HEADER = "path,caption,error\n"


def to_string(records: Iterable[CaptionRecord], fmt: str) -> str:
    """All records as one document (for download buttons)."""
    records = list(records)
    if fmt == "coco":
        return json.dumps(coco_results(records), indent=1) + "\n"
    head = CSV_HEADER if fmt == "csv" else ""
    return head + "".join(format_line(r, fmt) for r in records)


def coco_results(records: Iterable[CaptionRecord]) -> list[dict[str, Any]]:
    return [{"image_id": coco_image_id(r.path), "caption": r.caption} for r in records if r.ok]


def read_done(path: Path, fmt: str) -> list[CaptionRecord]:
    """Records already in an output file, for ``--resume``.

    A last line without its newline (a run killed mid-write) is dropped and cut from the file,
    so the resumed run appends after the last complete record.
    """
    if not path.exists() or path.stat().st_size == 0:
        return []
    if fmt == "coco":
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: cannot resume, not a COCO results JSON file ({exc})") from exc
        return [CaptionRecord(f"{row['image_id']}", row["caption"]) for row in rows]
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        with open(path, "r+b") as fh:
            fh.truncate(len(complete))
    text = complete.decode("utf-8")
    # Only "\n" ends a record: str.splitlines() would also split at "\r", U+2028, U+0085...,
    # which JSON strings and quoted CSV fields (file names!) may contain.
    lines = text.split("\n")[:-1]
    done: list[CaptionRecord] = []
    if fmt == "text":
        for line in lines:
            p, _, cap = line.rpartition("\t")  # a caption never holds a tab; a file name may
            done.append(CaptionRecord(p, cap))
    elif fmt == "jsonl":
        for line in lines:
            row = json.loads(line)
            done.append(CaptionRecord(row["path"], row.get("caption", ""), row.get("error")))
    elif fmt == "csv":
        reader = csv.reader(io.StringIO(text, newline=""))  # quoted fields may hold line breaks
        for row in reader:
            if row == ["path", "caption", "error"]:
                continue
            done.append(CaptionRecord(row[0], row[1], row[2] or None))
    return done


class ResultWriter:
    """Writes records as they arrive; each record is one ``write`` + flush (no torn lines).

    ``coco`` output is a single JSON array, so it is kept in memory and written atomically
    on `close`.
    """

    def __init__(self, stream: IO[str], fmt: str, *, target: Path | None = None,
                 existing: list[CaptionRecord] | None = None, header: bool = True) -> None:
        if fmt not in FORMATS:
            raise ConfigError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
        self.stream, self.fmt, self.target = stream, fmt, target
        self._coco: list[CaptionRecord] = list(existing or []) if fmt == "coco" else []
        if fmt == "csv" and header:
            self._emit(CSV_HEADER)

    def _emit(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def write(self, record: CaptionRecord) -> None:
        if self.fmt == "coco":
            coco_image_id(record.path)  # fail now, not at the end
            self._coco.append(record)
        else:
            self._emit(format_line(record, self.fmt))

    def close(self) -> None:
        if self.fmt != "coco":
            return
        text = to_string(self._coco, "coco")
        if self.target is None:
            self._emit(text)
            return
        atomic_write_text(self.target, text)
