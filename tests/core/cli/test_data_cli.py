"""`img2text data`: safe extraction and verification on zips built here; downloads from a
loopback server started here; no network needed."""

from __future__ import annotations

import contextlib
import http.server
import io
import json
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from core.cli import main

PREFIX = "tiny_coco_dataset-master/tiny_coco"


def _jpeg(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 6), (seed * 40 % 256, 90, 160)).save(buf, format="JPEG")
    return buf.getvalue()


def _coco(ids: list[int], captions: bool) -> str:
    data: dict[str, object] = {
        "images": [{"id": i, "file_name": f"{i:012d}.jpg", "width": 8, "height": 6} for i in ids],
        "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}],
    }
    if captions:
        data["annotations"] = [{"id": i, "image_id": i, "caption": f"picture {i}"} for i in ids]
    else:
        data["annotations"] = [
            {
                "id": i,
                "image_id": i,
                "category_id": 1 if i % 2 else 18,
                "bbox": [0, 0, 2, 2],
                "area": 4,
                "iscrowd": 0,
            }
            for i in ids
        ]
    return json.dumps(data)


def make_archive(
    path: Path, *, extra: dict[str, bytes] | None = None, drop: str | None = None
) -> Path:
    """A miniature Tiny COCO zip in the published layout (3 images per split)."""
    members: dict[str, bytes] = {}
    for split, ids in (("train2017", [1, 2, 3]), ("val2017", [4, 5, 6])):
        for i in ids:
            members[f"{PREFIX}/{split}/{i:012d}.jpg"] = _jpeg(i)
        members[f"{PREFIX}/annotations/instances_{split}.json"] = _coco(ids, False).encode()
        members[f"{PREFIX}/annotations/captions_{split}.json"] = _coco(ids, True).encode()
    members.update(extra or {})
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            if name != drop:
                zf.writestr(name, data)
    return path


def test_extract_and_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = make_archive(tmp_path / "a.zip")
    dest = tmp_path / "dest"
    assert main(["data", "tiny-coco", str(dest), "--archive", str(archive), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert (
        "train2017: layout tiny_coco, 3 images, 3 with captions, 3 with instance categories" in out
    )
    assert f"--data {dest / PREFIX}" in out
    assert (dest / PREFIX / "val2017" / "000000000004.jpg").is_file()
    # a second run finds it verified and does nothing
    assert main(["data", "tiny-coco", str(dest), "--archive", str(archive)]) == 0
    assert "already present" in capsys.readouterr().out
    # and `data check` reports the layout
    assert main(["data", "check", str(dest / PREFIX), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["splits"]["val2017"]["layout"] == "tiny_coco"
    assert report["splits"]["val2017"]["images"] == 3


@pytest.mark.parametrize("evil", ["../evil", "/tmp/abs_evil", "a/../../evil"])
def test_path_traversal_is_refused_before_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], evil: str
) -> None:
    archive = make_archive(tmp_path / "bad.zip", extra={evil: b"pwned"})
    dest = tmp_path / "dest"
    assert main(["data", "tiny-coco", str(dest), "--archive", str(archive)]) == 2
    err = capsys.readouterr().err
    assert "outside" in err and "Traceback" not in err
    assert not (tmp_path / "evil").exists()
    assert not any(dest.rglob("*.jpg"))  # nothing was extracted at all


def test_symlink_member_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = make_archive(tmp_path / "a.zip")
    with zipfile.ZipFile(archive, "a") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = 0o120777 << 16  # a symlink
        zf.writestr(info, "/etc/passwd")
    assert main(["data", "tiny-coco", str(tmp_path / "d"), "--archive", str(archive)]) == 2
    assert "symbolic link" in capsys.readouterr().err


def test_incomplete_archive_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = make_archive(tmp_path / "a.zip", drop=f"{PREFIX}/val2017/000000000005.jpg")
    assert main(["data", "tiny-coco", str(tmp_path / "d"), "--archive", str(archive)]) == 2
    assert "missing" in capsys.readouterr().err
    archive = make_archive(tmp_path / "b.zip", drop=f"{PREFIX}/annotations/instances_val2017.json")
    assert main(["data", "tiny-coco", str(tmp_path / "e"), "--archive", str(archive)]) == 2
    assert "val2017" in capsys.readouterr().err


def test_not_a_zip_and_network_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"nope")
    assert main(["data", "tiny-coco", str(tmp_path / "d"), "--archive", str(junk)]) == 2
    assert "not a readable zip" in capsys.readouterr().err
    # port 9 (discard) on localhost: refused at once, no internet needed
    url = "http://127.0.0.1:9/x.zip"
    assert (
        main(["data", "tiny-coco", str(tmp_path / "n"), "--url", url, "--timeout", "5", "--quiet"])
        == 2
    )
    err = capsys.readouterr().err
    assert f"cannot download {url}" in err and "--archive" in err and "Traceback" not in err
    assert not list((tmp_path / "n").glob("*.part"))


def test_check_plain_folder_and_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.jpg").write_bytes(_jpeg(1))
    assert main(["data", "check", str(tmp_path / "imgs"), "--split", "val2017"]) == 0
    assert "plain image folder with 1 images" in capsys.readouterr().out
    assert main(["data", "check", str(tmp_path / "none")]) == 2
    assert "not found" in capsys.readouterr().err


def test_help_shows_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["data", "tiny-coco", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--url" in out and "github.com/lizhogn" in out and "(default: 60.0)" in out


@contextlib.contextmanager
def serve(body: bytes, *, cut_at: int | None = None) -> Iterator[str]:
    """A loopback HTTP server answering every GET with ``body``; with ``cut_at`` it announces the
    full length but closes the connection after that many bytes (a download cut mid-way)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body if cut_at is None else body[:cut_at])
            self.close_connection = True

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/tiny_coco.zip"
    finally:
        server.shutdown()
        server.server_close()


def test_download_extract_verify_leaves_no_temporary_file(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    body = make_archive(tmp_path / "a.zip").read_bytes()
    dest = tmp_path / "dest"
    with serve(body) as url:
        assert main(["data", "tiny-coco", str(dest), "--url", url, "--quiet"]) == 0, capsys.readouterr().err
    assert "extracted" in capsys.readouterr().out
    assert (dest / PREFIX / "val2017" / "000000000004.jpg").read_bytes() == _jpeg(4)
    leftovers = [p.name for p in dest.rglob("*") if p.name.startswith(".") or p.suffix in (".tmp", ".part", ".zip")]
    assert leftovers == []  # the archive is removed once extracted, and no temporary file stays


def test_a_download_cut_mid_way_is_an_error_and_leaves_nothing(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    body = make_archive(tmp_path / "a.zip").read_bytes()
    dest = tmp_path / "dest"
    with serve(body, cut_at=len(body) // 2) as url:
        assert main(["data", "tiny-coco", str(dest), "--url", url, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"cannot download {url}: the connection closed after {len(body) // 2:,} of {len(body):,} bytes" in err
    assert "--archive" in err and "Traceback" not in err
    assert list(dest.iterdir()) == []  # no archive and no temporary file


def test_a_damaged_member_is_an_error_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = make_archive(tmp_path / "a.zip")
    data = bytearray(archive.read_bytes())
    at = data.index(_jpeg(5)) + 20  # inside the stored bytes of val2017/000000000005.jpg
    data[at] ^= 0xFF
    archive.write_bytes(bytes(data))
    assert main(["data", "tiny-coco", str(tmp_path / "d"), "--archive", str(archive)]) == 2
    err = capsys.readouterr().err
    assert "000000000005.jpg' is damaged" in err and "Bad CRC-32" in err and "Traceback" not in err
    assert not (tmp_path / "d" / PREFIX / "val2017" / "000000000005.jpg").exists()


def test_bad_dest_and_missing_archive_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (dest := tmp_path / "file").write_text("x")
    assert main(["data", "tiny-coco", str(dest), "--archive", str(tmp_path / "a.zip")]) == 2
    assert f"DEST exists and is not a folder: {dest}" in capsys.readouterr().err
    assert main(["data", "tiny-coco", str(tmp_path / "d"), "--archive", str(tmp_path / "none.zip")]) == 2
    err = capsys.readouterr().err
    assert f"archive not found: {tmp_path / 'none.zip'}" in err and "leave out --archive" in err
