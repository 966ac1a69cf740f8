"""Sources written by the tests from Tiny COCO, with hostile members mixed in."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

# Hostile inputs: each must become one error row naming its key, never a failed job.
HOSTILE = {
    "truncated": lambda jpeg: jpeg[: len(jpeg) // 3],  # a JPEG cut short
    "text": lambda jpeg: b"this is a text file, not an image\n",  # text named .jpg
    "empty": lambda jpeg: b"",
}


def val_images(tiny_coco_dir: Path) -> list[Path]:
    return sorted((tiny_coco_dir / "val2017").glob("*.jpg"))


def chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_tar_shards(images: list[Path], folder: Path, per_shard: int) -> list[str]:
    """Webdataset shards ``folder/{00000..N}.tar``: each image with a ``.txt`` companion, then
    hostile members (key ``bad{shard}_{kind}``) and a symlink named ``.jpg``. Returns hostile keys."""
    folder.mkdir(parents=True, exist_ok=True)
    hostile_keys = []
    for i, group in enumerate(chunks(images, per_shard)):
        with tarfile.open(folder / f"{i:05d}.tar", "w") as tar:
            for path in group:
                _add(tar, f"{path.stem}.jpg", path.read_bytes())
                _add(tar, f"{path.stem}.txt", b"a companion caption, not an image")
            for kind, make in HOSTILE.items():
                key = f"bad{i}_{kind}"
                _add(tar, f"{key}.jpg", make(group[0].read_bytes()))
                hostile_keys.append(key)
            link = tarfile.TarInfo(f"bad{i}_link.jpg")
            link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(link)
            hostile_keys.append(f"bad{i}_link")
    return hostile_keys


def write_parquet_files(images: list[Path], folder: Path, per_file: int) -> list[str]:
    """Parquet files alternating an image-bytes table and a path table, hostile rows at the end
    of each. Returns the hostile keys."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    hostile_keys = []
    for i, group in enumerate(chunks(images, per_file)):
        keys = [p.stem for p in group]
        if i % 2 == 0:
            values: list[bytes | None] = [p.read_bytes() for p in group]
            for kind, make in HOSTILE.items():
                keys.append(f"bad{i}_{kind}")
                values.append(make(group[0].read_bytes()))
            keys.append(f"bad{i}_null")
            values.append(None)
            table = pa.table({"key": keys, "image": pa.array(values, pa.binary())})
        else:
            paths = [str(p) for p in group] + [str(folder / "missing.jpg")]
            keys.append(f"bad{i}_missing")
            table = pa.table({"key": keys, "path": paths})
        hostile_keys.extend(k for k in keys if k.startswith("bad"))
        pq.write_table(table, folder / f"table-{i:03d}.parquet")
    return hostile_keys
