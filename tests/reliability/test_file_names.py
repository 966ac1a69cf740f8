"""Hostile but legal file names through ``img2text caption -o F`` and ``--resume``.

Linux file names may hold tabs, carriage returns, newlines and Unicode line separators
(U+2028, U+0085). A finished run resumed must redo nothing and lose nothing, in every format;
the text format (PATH<TAB>CAPTION, no escaping) refuses names with line breaks by name.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from core.cli import main

NAMES = ["plain.png", "tab\tname.png", "line\u2028separator.png", "next\x85line.png",
         "carriage\rreturn.png", "new\nline.png", 'quote"comma,.png', "ünïcødé 名前.png"]
BREAKS = [n for n in NAMES if "\n" in n or "\r" in n]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("names")
    for i, name in enumerate(NAMES):
        Image.new("RGB", (24, 24), (30 * i, 200 - 20 * i, 90)).save(root / name, format="PNG")
    return root


def records(path: Path, fmt: str) -> list[str]:
    text = path.read_bytes().decode("utf-8")  # read_text() would turn "\r" into "\n"
    if fmt == "jsonl":
        return [json.loads(line)["path"] for line in text.split("\n")[:-1]]
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(text, newline="")))
        assert rows[0] == ["path", "caption", "error"]
        return [r[0] for r in rows[1:]]
    return [line.rpartition("\t")[0] for line in text.split("\n")[:-1]]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("fmt", ["jsonl", "csv", "text"])
def test_resume_after_a_finished_run_redoes_and_loses_nothing(
        fmt: str, folder: Path, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / f"caps.{fmt}"
    args = ["caption", str(folder), "--model", str(tiny_model_dir), "--device", "cpu", "--greedy",
            "--max-new-tokens", "4", "--format", fmt, "-o", str(out), "-q"]
    expected = sorted(str(folder / n) for n in NAMES if fmt != "text" or n not in BREAKS)
    first = main(args)
    assert first == (1 if fmt == "text" else 0), capsys.readouterr().err
    written = out.read_bytes()
    assert sorted(records(out, fmt)) == expected
    err = capsys.readouterr().err
    if fmt == "text":
        for name in BREAKS:
            assert f"skipped {folder / name}: file name contains a line break" in err
    resumed = main([*args, "--resume"])
    err = capsys.readouterr().err
    assert resumed == first, err
    assert "Traceback" not in err and "error:" not in err, err
    assert out.read_bytes() == written, "the resumed run rewrote or duplicated records"
