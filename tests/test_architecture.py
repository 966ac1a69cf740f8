"""docs/architecture.md's import rules, checked on the source: a room imports only what it may.

Every ``import``/``from ... import`` in the project's packages (at module level or inside a
function) is mapped to its room, and each edge must be allowed by ``MAY_IMPORT`` below - the
same table as in docs/architecture.md. Front ends must also use public faces only: ``core`` or a
room one level deep (``core.search``), never a module inside a package (``core.search.storage``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "gradio_app", "streamlit_app", "bench")

# Foundation modules every room may use (errors, files, lazy exports, device choice, images).
BASE = {"core.errors", "core.fileio", "core._lazy", "core.devices", "core.decode_limits", "core.images"}

# room -> rooms it may import (besides BASE and itself). Mirrors docs/architecture.md.
MAY_IMPORT: dict[str, set[str]] = {
    "core.errors": set(),
    "core.fileio": set(),
    "core._lazy": set(),
    "core.devices": set(),
    "core.decode_limits": set(),
    "core.images": set(),
    "core.datasets": set(),
    "core.captioning": set(),
    "core.ssl": {"core.datasets", "core.search"},  # core.search only for retrieval metrics, lazily
    "core.search": {"core.ssl", "core.datasets"},  # encoders come from core.ssl
    "core.settings": {"core.captioning"},
    "core.workflows": {"core", "core.captioning", "core.ssl", "core.search", "core.datasets",
                       "core.settings"},
    "core.distributed": {"core", "core.captioning", "core.ssl", "core.search", "core.datasets"},
    "core": {"core.captioning", "core.ssl", "core.search", "core.datasets", "core.workflows",
             "core.settings", "core.distributed"},
    "core.cli": {"core", "core.captioning", "core.ssl", "core.search", "core.datasets",
                 "core.workflows", "core.settings", "core.distributed"},
    "gradio_app": {"core", "core.captioning", "core.ssl", "core.search", "core.workflows",
                   "core.settings"},
    "streamlit_app": {"core", "core.captioning", "core.ssl", "core.search", "core.workflows",
                      "core.settings"},
    "bench": {"core", "core.captioning", "core.ssl", "core.search", "core.datasets",
              "core.distributed", "core.workflows"},
}
# Rooms that must reach core through public faces only (package exports, one level deep).
FRONT_ENDS = {"gradio_app", "streamlit_app"}


def room_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "core":
        return parts[0]
    return "core" if len(parts) == 1 else f"core.{parts[1]}"


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


def project_imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every absolute import of one of the project's packages."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
    return [(line, mod) for line, mod in found if mod.split(".")[0] in PACKAGES]


def source_files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_every_room_is_in_the_table():
    rooms = {room_of(module_name(p)) for p in source_files()}
    assert rooms <= set(MAY_IMPORT), f"rooms missing from MAY_IMPORT/docs: {rooms - set(MAY_IMPORT)}"


@pytest.mark.parametrize("path", source_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_follow_the_rules(path: Path):
    src_room = room_of(module_name(path))
    allowed = MAY_IMPORT[src_room] | BASE | {src_room}
    bad = [f"line {line}: {mod}" for line, mod in project_imports(path) if room_of(mod) not in allowed]
    assert not bad, f"{src_room} may not import: {bad} (see docs/architecture.md)"


@pytest.mark.parametrize(
    "path", [p for p in source_files() if room_of(module_name(p)) in FRONT_ENDS],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_front_ends_use_public_faces(path: Path):
    deep = [f"line {line}: {mod}" for line, mod in project_imports(path)
            if mod.startswith("core") and mod.count(".") > 1
            or (mod.startswith("core.") and room_of(mod) not in MAY_IMPORT[room_of(module_name(path))])]
    assert not deep, f"import core's public faces only (core, core.<package>): {deep}"


def test_the_check_can_fail(tmp_path: Path):
    """The rule checker itself: an app reaching into a package module is caught."""
    bad = tmp_path / "x.py"
    bad.write_text("from core.search.storage import read_index\n")
    mods = [mod for _, mod in project_imports(bad)]
    assert mods == ["core.search.storage"] and mods[0].count(".") > 1
