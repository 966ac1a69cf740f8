"""docs/architecture.md's import rules, checked on the source: a room imports only what it may.

Every ``import``/``from ... import`` in the project's packages (at module level or inside a
function) is mapped to its room, and each edge must be allowed by ``MAY_IMPORT`` below - the
same table as in docs/architecture.md. ``from core.search import storage`` counts as an import of
the module ``core.search.storage``. The front ends and the CLI must also use public faces only:
``core`` or a room one level deep (``core.search``), never a module inside another room's package
(``core.search.storage``); the CLI's own modules (``core.cli.options``) are its own business.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "gradio_app", "streamlit_app", "bench")

# Foundation modules every room may use (errors, files, lazy exports, device choice, images).
BASE = {"core.errors", "core.fileio", "core._lazy", "core.devices", "core.decode_limits", "core.images",
        "core.logs"}

# room -> rooms it may import (besides BASE and itself). Mirrors docs/architecture.md.
MAY_IMPORT: dict[str, set[str]] = {
    "core.errors": set(),
    "core.logs": set(),
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
                       "core.settings"},  # core: the lazy public API (core.load_image, ...)
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
              "core.distributed", "core.workflows", "core.settings"},  # any core room
}
# Rooms that must reach the other rooms through public faces only (package exports, one level
# deep). bench/ is not one: it times internals (core.search.topk, core.ssl.loss) on purpose.
PUBLIC_FACES_ONLY = {"gradio_app", "streamlit_app", "core.cli"}


def room_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "core":
        return parts[0]
    return "core" if len(parts) == 1 else f"core.{parts[1]}"


def module_name(path: Path, root: Path = ROOT) -> str:
    name = ".".join(path.relative_to(root).with_suffix("").parts)
    return name.removesuffix(".__init__")


def is_module(name: str, root: Path = ROOT) -> bool:
    """Whether ``name`` (dotted) is a module or package of the project under ``root``."""
    path = root.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def exports(package: str, root: Path = ROOT) -> set[str]:
    """The names in a project package's literal ``__all__`` (empty if it has none)."""
    init = root.joinpath(*package.split(".")) / "__init__.py"
    if not init.is_file():
        return set()
    for node in ast.parse(init.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return set(ast.literal_eval(node.value))
    return set()


def project_imports(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, imported module) for every absolute import of one of the project's packages.

    ``from pkg import name`` where ``pkg.name`` is a module of the project and ``name`` is not
    one of ``pkg``'s exports is an import of ``pkg.name`` (``from core.search import storage`` ->
    ``core.search.storage``); ``from core.ssl import train`` is the exported function.
    """
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            public = exports(node.module, root)
            subs = [f"{node.module}.{a.name}" for a in node.names
                    if a.name not in public and is_module(f"{node.module}.{a.name}", root)]
            found.extend((node.lineno, mod) for mod in subs or [node.module])
            if subs and len(subs) < len(node.names):
                found.append((node.lineno, node.module))  # names that are not modules: the package
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
    return [(line, mod) for line, mod in found if mod.split(".")[0] in PACKAGES]


def deep_imports(path: Path, root: Path = ROOT) -> list[str]:
    """Imports of a module inside another room's package (``core.search.storage``) in ``path``."""
    own = room_of(module_name(path, root))
    return [f"line {line}: {mod}" for line, mod in project_imports(path, root)
            if mod.startswith("core.") and mod.count(".") > 1 and room_of(mod) != own]


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
    "path", [p for p in source_files() if room_of(module_name(p)) in PUBLIC_FACES_ONLY],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_front_ends_and_cli_use_public_faces(path: Path):
    deep = deep_imports(path)
    assert not deep, f"import core's public faces only (core, core.<package>): {deep}"


def test_the_checks_can_fail(tmp_path: Path):
    """The rule checkers themselves, on a copy of the layout: each form of a deep import is caught."""
    for name in ("core/__init__.py", "core/search/__init__.py", "core/search/storage.py",
                 "core/cli/__init__.py", "core/cli/options.py", "gradio_app/__init__.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    app = tmp_path / "gradio_app" / "x.py"
    for line in ("from core.search.storage import read_index", "import core.search.storage",
                 "from core.search import storage", "from core.search import EmbeddingIndex, storage"):
        app.write_text(line + "\n")
        assert deep_imports(app, tmp_path) == ["line 1: core.search.storage"], line
    app.write_text("from core.search import EmbeddingIndex\nfrom core import load_image\n")
    assert deep_imports(app, tmp_path) == [] and [m for _, m in project_imports(app, tmp_path)] == [
        "core.search", "core"]
    cli = tmp_path / "core" / "cli" / "x.py"
    cli.write_text("from core.cli import options\nfrom core.cli.options import add_data\n")
    assert deep_imports(cli, tmp_path) == []  # the CLI's own modules
    cli.write_text("def f():\n    from core.search import storage\n")
    assert deep_imports(cli, tmp_path) == ["line 2: core.search.storage"]  # inside a function too
    assert room_of("core.search.storage") == "core.search" and room_of("gradio_app.app") == "gradio_app"
    (tmp_path / "core" / "search" / "__init__.py").write_text('__all__ = ["storage"]\n')
    app.write_text("from core.search import storage\n")  # an export that shares a module's name
    assert deep_imports(app, tmp_path) == []
