"""`img2text caption` and `img2text eval` end to end, in-process and through the console script."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import core
from core.cli import main

GREEDY = ["--greedy"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, tiny_coco_dir: Path) -> Path:
    """Six COCO images in a tree, plus a non-image file that folders must ignore."""
    root = tmp_path_factory.mktemp("photos")
    (root / "sub").mkdir()
    images = sorted((tiny_coco_dir / "val2017").glob("*.jpg"))[:6]
    for i, src in enumerate(images):
        (root / ("sub" if i % 2 else ".") / src.name).write_bytes(src.read_bytes())
    (root / "notes.txt").write_text("not an image")
    return root


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def expected(model: Path, paths: list[Path]) -> dict[str, str]:
    cap = core.get_captioner(str(model), device="cpu")
    return {str(p): c for p, c in zip(paths, cap.caption_batch(paths, num_beams=1), strict=True)}


def test_text_format_on_a_folder(capsys, tiny_model_dir: Path, folder: Path) -> None:
    code, out, err = run(capsys, "caption", str(folder), "--model", str(tiny_model_dir), *GREEDY)
    assert code == 0, err
    rows = dict(line.split("\t") for line in out.splitlines())
    images = sorted(p for p in folder.rglob("*.jpg"))
    assert sorted(rows) == sorted(map(str, images))  # recursive, images only
    assert rows == expected(tiny_model_dir, images)
    assert "captioned 6 image(s), 0 failed" in err


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "coco"])
def test_structured_formats_record_provenance(capsys, tiny_model_dir: Path, folder: Path,
                                              tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"captions.{fmt}"
    code, _, err = run(capsys, "caption", str(folder), "--model", str(tiny_model_dir), *GREEDY,
                       "--format", fmt, "--output", str(out), "--quiet")
    assert code == 0, err
    images = sorted(folder.rglob("*.jpg"))
    want = expected(tiny_model_dir, images)
    text = out.read_text()
    if fmt == "jsonl":
        got = {r["path"]: r["caption"] for r in map(json.loads, text.splitlines())}
    elif fmt == "csv":
        got = {r["path"]: r["caption"] for r in csv.DictReader(io.StringIO(text))}
    else:
        got = {r["image_id"]: r["caption"] for r in json.loads(text)}
        want = {int(Path(p).stem): c for p, c in want.items()}
    assert got == want
    meta = json.loads((tmp_path / f"captions.{fmt}.meta.json").read_text())
    assert meta["model"] == str(tiny_model_dir) and meta["device"] == "cpu"
    assert meta["dtype"] == "float32" and meta["generation"]["num_beams"] == 1


def test_bad_files_are_reported_and_exit_status_is_1(capsys, tiny_model_dir: Path, folder: Path,
                                                     tmp_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    good = next(folder.glob("*.jpg"))
    code, out, err = run(capsys, "caption", str(good), str(bad), "--model", str(tiny_model_dir), *GREEDY)
    assert code == 1
    assert out.startswith(f"{good}\t") and "broken" not in out
    assert "broken.jpg" in err and "skipped" in err


def test_model_that_cannot_load_exits_2_with_the_fix(capsys, folder: Path, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    code, _, err = run(capsys, "caption", str(folder), "--model", "nobody/no-such-model")
    assert code == 2
    assert "HF_HUB_OFFLINE" in err and "Traceback" not in err


def test_usage_errors_exit_2(capsys, folder: Path, tiny_model_dir: Path) -> None:
    code, _, err = run(capsys, "caption", str(folder), "--model", str(tiny_model_dir), "--num-beams", "0")
    assert code == 2 and "num_beams" in err
    code, _, err = run(capsys, "caption", str(folder), "--resume")
    assert code == 2 and "--output" in err


def test_an_unknown_option_shows_the_commands_usage_and_the_closest_option(capsys, folder: Path) -> None:
    # Issue 24: `img2text caption --beams 2` printed the top-level usage.
    with pytest.raises(SystemExit) as exit_:
        main(["caption", str(folder), "--beams", "2"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith("usage: img2text caption ")
    assert "unrecognized arguments: --beams 2 (did you mean --num-beams?)" in err
    with pytest.raises(SystemExit):
        main(["ssl", "search", "--index", "x", "--id", "1", "--txt", "dog"])
    err = capsys.readouterr().err
    assert err.startswith("usage: img2text ssl search ") and "did you mean --text?" in err


def test_a_path_that_does_not_exist_is_a_usage_error_naming_it(capsys, folder: Path, tmp_path: Path) -> None:
    # Issue 24: a mistyped path was a skipped input (exit 1) after loading the model.
    good, gone = next(folder.glob("*.jpg")), tmp_path / "no-such-photo.jpg"
    code, out, err = run(capsys, "caption", str(good), str(gone), "--model", str(tmp_path / "no-model"))
    assert code == 2 and out == "" and f"no such file or folder: {gone}" in err
    assert "model" not in err  # refused before any model is loaded


def test_resume_skips_done_and_repairs_a_torn_line(capsys, tiny_model_dir: Path, folder: Path,
                                                   tmp_path: Path) -> None:
    out = tmp_path / "run.jsonl"
    args = ["caption", str(folder), "--model", str(tiny_model_dir), *GREEDY, "--format", "jsonl",
            "--output", str(out), "--quiet"]
    assert run(capsys, *args)[0] == 0
    full = out.read_text().splitlines()
    # Simulate a kill: two records done, the third half written.
    out.write_text("\n".join(full[:2]) + "\n" + full[2][:17])
    code, _, err = run(capsys, *args, "--resume")
    assert code == 0, err
    lines = out.read_text().splitlines()
    assert sorted(lines) == sorted(full) and len(lines) == len(set(lines))
    code, _, err = run(capsys, *args[:-1], "--resume")  # nothing left to do
    assert code == 0 and "nothing to do" in err


def test_help_of_every_command_lists_defaults(capsys) -> None:
    for argv in (["--help"], ["caption", "--help"], ["eval", "--help"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 0
        out = capsys.readouterr().out
        assert "usage: img2text" in out
    with pytest.raises(SystemExit):
        main(["caption", "--help"])
    out = capsys.readouterr().out
    for flag in ("--model", "--num-beams", "--max-new-tokens", "--greedy", "--sample", "--batch-size",
                 "--device", "--dtype", "--format", "--output", "--resume", "--quiet"):
        assert flag in out
    assert "(default: 4)" in out


def test_console_script_and_stdin(tiny_model_dir: Path, folder: Path) -> None:
    exe = Path(sys.executable).with_name("img2text")
    assert exe.exists(), "the img2text console script is not installed"
    image = next(folder.glob("*.jpg"))
    env = {**os.environ, "IMG2TEXT_MODEL": str(tiny_model_dir)}
    proc = subprocess.run([str(exe), "caption", "-", "--greedy", "--device", "cpu"], input=image.read_bytes(),
                          capture_output=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()
    path, caption = proc.stdout.decode().rstrip("\n").split("\t")
    assert path == "-" and caption == expected(tiny_model_dir, [image])[str(image)]


def test_eval_scores_a_captions_file_and_a_split(capsys, tiny_model_dir: Path, tiny_coco_dir: Path,
                                                 tmp_path: Path) -> None:
    caps = tmp_path / "val.jsonl"
    assert run(capsys, "caption", str(tiny_coco_dir / "val2017"), "--model", str(tiny_model_dir),
               *GREEDY, "--format", "jsonl", "-o", str(caps), "-q")[0] == 0
    refs = tiny_coco_dir / "annotations" / "captions_val2017.json"
    per_image = tmp_path / "scores.jsonl"
    code, out, err = run(capsys, "eval", "--captions", str(caps), "--references", str(refs),
                         "--per-image", str(per_image), "--output-format", "json")
    assert code == 0, err
    scores = json.loads(out)
    assert scores["images"] == 50
    assert 0 < scores["BLEU-1"] <= 1 and scores["CIDEr-D"] >= 0
    assert len(per_image.read_text().splitlines()) == 50
    code, out2, err = run(capsys, "eval", "--data", str(tiny_coco_dir), "--split", "val2017",
                          "--model", str(tiny_model_dir), *GREEDY, "--output-format", "json")
    assert code == 0, err
    assert json.loads(out2) == scores  # captioning the split directly gives the same scores
    code, _, err = run(capsys, "eval", "--captions", str(tmp_path / "missing.jsonl"), "--references", str(refs))
    assert code == 2 and "not found" in err


def _copy(files: list[Path], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy(f, folder / f.name)


def test_eval_data_reads_every_layout_core_datasets_knows(capsys, tiny_model_dir: Path, tiny_coco_dir: Path,
                                                          tmp_path: Path) -> None:
    """--data: Tiny COCO's layout (captions only), the notebook's, and a plain folder with
    --references all give the scores of `img2text caption` + `eval --captions` on the same images."""
    refs = tiny_coco_dir / "annotations" / "captions_val2017.json"
    images = sorted((tiny_coco_dir / "val2017").glob("*.jpg"))[:6]
    fast = [*GREEDY, "--max-new-tokens", "4", "--model", str(tiny_model_dir), "-q", "--output-format", "json"]
    caps = tmp_path / "six.jsonl"
    assert run(capsys, "caption", *map(str, images), "--model", str(tiny_model_dir), *GREEDY,
               "--max-new-tokens", "4", "--format", "jsonl", "-o", str(caps), "-q")[0] == 0
    code, out, err = run(capsys, "eval", "--captions", str(caps), "--references", str(refs), "--output-format", "json")
    assert code == 0, err
    want = json.loads(out)
    assert want["images"] == 6 and set(want) >= {"BLEU-4", "ROUGE-L", "CIDEr-D", "tokenizer", "tokenizer_note"}

    published = tmp_path / "published"  # DIR/annotations/captions_val2017.json + DIR/val2017/, no instances
    _copy(images, published / "val2017")
    _copy([refs], published / "annotations")
    notebook = tmp_path / "notebook"  # DIR/tiny_coco_dataset-master/{annotations/captions.json, images/val2017/}
    _copy(images, notebook / "tiny_coco_dataset-master" / "images" / "val2017")
    (notebook / "tiny_coco_dataset-master" / "annotations").mkdir()
    shutil.copy(refs, notebook / "tiny_coco_dataset-master" / "annotations" / "captions.json")
    plain = tmp_path / "plain"  # any folder of images, some in sub-folders, one without references
    _copy(images[:3], plain)
    _copy(images[3:], plain / "sub")
    Image.new("RGB", (32, 24), (200, 30, 30)).save(plain / "no-reference.png")
    for data, extra in ((published, []), (notebook, []), (plain, ["--references", str(refs)])):
        per_image = tmp_path / f"{data.name}-scores.jsonl"
        code, out, err = run(capsys, "eval", "--data", str(data), "--split", "val2017", *extra, *fast,
                             "--per-image", str(per_image))
        assert code == 0, (data.name, err)
        assert json.loads(out) == want, data.name
        rows = [json.loads(line) for line in per_image.read_text().splitlines()]
        assert len(rows) == 6 and all(set(r) == {"image_id", *want} - {"images", "tokenizer", "tokenizer_note"}
                                      for r in rows)
        assert ("1 image(s) have no reference and were skipped" in err) == (data is plain)

    code, _, err = run(capsys, "eval", "--data", str(plain), "--split", "val2017", *fast)
    assert code == 2 and "no caption annotations for split 'val2017'" in err and "--references FILE" in err
    assert str(plain / "annotations" / "captions_val2017.json") in err  # names what it looked for
    code, _, err = run(capsys, "eval", "--data", str(tmp_path / "absent"), *fast)
    assert code == 2 and "data folder not found" in err
    code, _, err = run(capsys, "eval", "--data", str(published), "--split", "train2017",
                       "--references", str(refs), *fast)  # a wrong split is not "every image here"
    assert code == 2 and "not with an image folder for split 'train2017'; check --split" in err
    code, _, err = run(capsys, "eval", "--data", str(plain), *fast, "--references",
                       str(tiny_coco_dir / "annotations" / "captions_train2017.json"))
    assert code == 2 and "none of its 7 image(s)" in err and "check --split and --references" in err
    code, _, err = run(capsys, "eval", "--captions", str(caps), *fast)
    assert code == 2 and "--references FILE" in err
    with pytest.raises(SystemExit):  # --data and --captions exclude each other (argparse usage error)
        main(["eval", "--captions", str(caps), "--data", str(plain)])
    assert "not allowed with argument" in capsys.readouterr().err


def test_max_pixels_applies_to_the_run_without_changing_the_cached_captioner(
        capsys, tiny_model_dir: Path, folder: Path) -> None:
    cached = core.get_captioner(str(tiny_model_dir), device="cpu")
    before = cached.max_pixels
    code, out, err = run(capsys, "caption", str(folder), "--model", str(tiny_model_dir), "--max-pixels", "1000",
                         *GREEDY)
    assert code == 1 and out == ""  # every COCO image is over 1,000 pixels
    assert "over the limit of 1,000" in err and "0 captioned" not in out
    assert cached.max_pixels == before  # other users of the cached model keep their cap
    code, out, err = run(capsys, "caption", str(folder), "--model", str(tiny_model_dir), *GREEDY)
    assert code == 0 and len(out.splitlines()) == 6, err


def test_rerun_onto_an_existing_output_refuses_without_overwrite(capsys, tiny_model_dir: Path, folder: Path,
                                                                tmp_path: Path) -> None:
    out = tmp_path / "caps.jsonl"
    args = ["caption", str(folder), "--model", str(tiny_model_dir), *GREEDY, "--format", "jsonl",
            "-o", str(out), "-q"]
    assert run(capsys, *args)[0] == 0
    before = out.read_bytes()
    one = next(folder.glob("*.jpg"))
    code, _, err = run(capsys, "caption", str(one), *args[2:])
    assert code == 2 and "already exists" in err and "--overwrite" in err and "--resume" in err
    assert out.read_bytes() == before  # nothing replaced
    code, _, err = run(capsys, "caption", str(one), *args[2:], "--overwrite")
    assert code == 0, err
    assert len(out.read_text().splitlines()) == 1


def test_resume_refuses_different_settings_and_names_them(capsys, tiny_model_dir: Path, folder: Path,
                                                          tmp_path: Path) -> None:
    out = tmp_path / "caps.jsonl"
    meta = tmp_path / "caps.jsonl.meta.json"
    args = ["caption", str(folder), "--model", str(tiny_model_dir), "--format", "jsonl", "-o", str(out), "-q"]
    assert run(capsys, *args, "--num-beams", "2", "--max-new-tokens", "6")[0] == 0
    full = out.read_text().splitlines()
    out.write_text("\n".join(full[:2]) + "\n")  # an interrupted run
    before, saved = out.read_bytes(), meta.read_bytes()

    code, _, err = run(capsys, *args, "--resume", "--greedy", "--max-new-tokens", "6")
    # Only the fields that differ, in the CLI's words (issue 24: not two whole dicts).
    assert code == 2 and "num_beams: 2 before, 1 now" in err and "{" not in err and "max_new_tokens" not in err
    code, _, err = run(capsys, *args, "--resume", "--num-beams", "2")
    assert code == 2 and "max_new_tokens" in err and "num_beams" not in err
    code, _, err = run(capsys, *args[:-5], "--format", "csv", "-o", str(out), "--resume",
                       "--num-beams", "2", "--max-new-tokens", "6")
    assert code == 2 and "format" in err
    assert out.read_bytes() == before and meta.read_bytes() == saved  # refusals change nothing

    # A file written by another model (its meta says so) is refused after the model loads.
    edited = json.loads(saved)
    meta.write_text(json.dumps({**edited, "model": "someone/other-model"}))
    code, _, err = run(capsys, *args, "--resume", "--num-beams", "2", "--max-new-tokens", "6")
    assert code == 2 and "model" in err and "someone/other-model" in err
    assert out.read_bytes() == before
    meta.write_bytes(saved)

    code, _, err = run(capsys, *args, "--resume", "--num-beams", "2", "--max-new-tokens", "6")
    assert code == 0, err  # the same settings (defaults filled in) continue the file
    assert sorted(out.read_text().splitlines()) == sorted(full)

    meta.unlink()
    code, _, err = run(capsys, *args, "--resume", "--num-beams", "2", "--max-new-tokens", "6")
    assert code == 2 and "meta.json" in err and "missing" in err


def test_eval_with_data_shows_progress(capsys, tiny_model_dir: Path, tiny_coco_dir: Path) -> None:
    code, out, err = run(capsys, "eval", "--data", str(tiny_coco_dir), "--split", "val2017",
                         "--model", str(tiny_model_dir), *GREEDY, "--max-new-tokens", "4")
    assert code == 0, err
    assert "captioning" in err and "50/50" in err
    assert "CIDEr-D" in out
    code, out, err = run(capsys, "eval", "--data", str(tiny_coco_dir), "--split", "val2017",
                         "--model", str(tiny_model_dir), *GREEDY, "--max-new-tokens", "4", "--quiet")
    assert code == 0 and "50/50" not in err


def test_unreachable_hub_is_asked_once_then_the_fix_is_printed(folder: Path, tmp_path: Path) -> None:
    """A hub that drops every connection: one attempt (counted), exit 2, the fix-it message."""
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    port, attempts = server.getsockname()[1], []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:  # closed at the end of the test
                return
            conn.settimeout(5)
            try:
                request = conn.recv(4096).split(b"\r\n", 1)[0].decode("latin-1")
            except OSError:
                request = "?"
            # huggingface_hub's once-a-day agent-registry fetch (3 s cap) is telemetry, not a try.
            if "/api/agent-harnesses" not in request:
                attempts.append(request)
            conn.close()  # no answer: a transport error for the client

    threading.Thread(target=serve, daemon=True).start()
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{port}", HF_HOME=str(tmp_path / "hf"))
    image = next(folder.glob("*.jpg"))
    try:
        proc = subprocess.run([sys.executable, "-m", "core.cli", "caption", str(image), "--model",
                               "nobody/no-such-model"], capture_output=True, text=True, env=env,
                              timeout=120, cwd=Path(__file__).resolve().parents[3])
    finally:
        server.close()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "unreachable" in proc.stderr and "Traceback" not in proc.stderr
    assert len(attempts) == 1, f"the hub was asked {len(attempts)} times: {attempts}"
