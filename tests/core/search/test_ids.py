"""Ids come back as the Python ints or strings that went in, before and after a save.

SQLite stores a NumPy integer through the buffer protocol, as an 8-byte blob: without the
conversion at the index's door, ``np.arange(n)`` ids came back as ``b'\\x92\\x10\\x00...'``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.search import EmbeddingIndex, IndexFormatError

N = 24


def _pandas() -> Any:
    try:
        import pandas
    except ImportError as exc:  # pandas comes with the gradio and streamlit extras
        if os.environ.get("CI"):
            pytest.fail(f"pandas is not importable ({exc}); install the project's extras")
        pytest.skip(f"pandas is not installed ({exc})")
    return pandas


def _ints() -> list[int]:
    return [4242 + 7 * i for i in range(N)]


def _strs() -> list[str]:
    return [f"img-{i:03d}" for i in range(N)]


ID_FORMS: dict[str, Callable[[], Any]] = {
    "list of ints": _ints,
    "list of str": _strs,
    "numpy int64": lambda: np.asarray(_ints(), dtype=np.int64),
    "numpy int32": lambda: np.asarray(_ints(), dtype=np.int32),
    "numpy str": lambda: np.asarray(_strs()),
    "numpy object ints": lambda: np.asarray([np.int64(i) for i in _ints()], dtype=object),
    "pandas ints": lambda: _pandas().Series(_ints()),
    "pandas str": lambda: _pandas().Series(_strs()),
    "pandas column": lambda: _pandas().DataFrame({"id": _ints()})["id"],
}


def _expected(form: str) -> list[int | str]:
    return list(_strs() if "str" in form else _ints())


def _check(ids: list[Any], want: list[int | str]) -> None:
    assert ids == want
    assert [type(i) for i in ids] == [type(w) for w in want], [type(i).__name__ for i in ids[:3]]


@pytest.mark.parametrize("form", list(ID_FORMS))
def test_ids_round_trip_as_python_values(form: str, tmp_path: Path) -> None:
    x = np.random.default_rng(0).standard_normal((N, 8)).astype(np.float32)
    want = _expected(form)
    built = EmbeddingIndex.from_arrays(x, ID_FORMS[form](), captions=[f"a cat number {i}" for i in range(N)])
    built.save(tmp_path / "index")
    loaded = EmbeddingIndex.load(tmp_path / "index")
    for index in (built, loaded):
        _check(list(index.image_ids), want)
        by_words = [r.image_id for r in index.find_text("cat", N)]
        _check(sorted(by_words, key=want.index), want)
        _check([index.find_similar(x[i], k=1)[0].image_id for i in range(N)], want)
        _, found = index.search(x, 1)
        _check([v.item() if isinstance(v, np.generic) else v for v in found[:, 0]], want)
        assert index.row_of_id(str(want[5])) == 5
        assert index.find_similar(want[5], k=1)[0].image_id != want[5]
    assert [r.to_dict()["image_id"] for r in loaded.find_text("cat", 2)] == [
        r.image_id for r in loaded.find_text("cat", 2)]


@pytest.mark.parametrize("bad", [[0.5, 1.5], [b"a", b"b"], [True, False], [None, 1]])
def test_ids_of_other_types_are_refused(bad: list[Any]) -> None:
    with pytest.raises(IndexFormatError, match="ids must be ints or strings"):
        EmbeddingIndex.from_arrays(np.eye(2, dtype=np.float32), bad)
