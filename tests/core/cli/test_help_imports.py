"""``img2text --help`` and every sub-command's help print without importing torch/transformers.

Run in a fresh interpreter each, so nothing imported by other tests hides an import. Also: the
constants the CLI mirrors for its help equal the library's, and the lazy package exports resolve.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
HEAVY = ("torch", "torchvision", "transformers", "matplotlib")
COMMANDS = [
    [], ["caption"], ["eval"], ["ssl"], ["ssl", "train"], ["ssl", "embed"], ["ssl", "search"],
    ["ssl", "eval"], ["data"], ["data", "tiny-coco"], ["data", "check"], ["models"],
    ["deploy"], ["deploy", "space"],
]
PROBE = r"""
import json, sys
from core.cli import main
heavy = {}
for argv in json.loads(sys.argv[1]):
    try:
        main([*argv, "--help"])
    except SystemExit as exc:
        assert exc.code == 0, (argv, exc.code)
    heavy[" ".join(argv) or "(top)"] = [m for m in json.loads(sys.argv[2]) if m in sys.modules]
print(json.dumps(heavy))
"""


def test_help_of_every_command_imports_no_torch_or_transformers() -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    # One process per command: an import made by one help would hide another's.
    for argv in COMMANDS:
        proc = subprocess.run(
            [sys.executable, "-c", PROBE, json.dumps([argv]), json.dumps(HEAVY)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        heavy = json.loads(proc.stdout.strip().splitlines()[-1])
        assert heavy == {" ".join(argv) or "(top)": []}, f"img2text {' '.join(argv)} --help imported {heavy}"


def test_the_probe_sees_an_import_when_there_is_one() -> None:
    """The check above can fail: running a command (not its help) does import torch."""
    code = "import sys; import core; core.Captioner; print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.stdout.strip() == "True", proc.stderr[-2000:]


def test_mirrored_help_constants_equal_the_library_values() -> None:
    from core.captioning import captioner, loading
    from core.cli import options
    from core.devices import CAPTION_DTYPE_CHOICES, DEVICE_HELP
    from core.search import embed

    assert options.DEVICE_HELP == DEVICE_HELP
    assert options.DTYPE_CHOICES == CAPTION_DTYPE_CHOICES
    assert options.DEFAULT_MODEL == loading.DEFAULT_MODEL
    assert options.MODEL_ENV == loading.MODEL_ENV
    assert options.CAPTION_BATCH_SIZE == captioner.DEFAULT_BATCH_SIZE
    assert options.EMBED_BATCH_SIZE == embed.DEFAULT_BATCH_SIZE
    assert options.ON_ERROR_CHOICES == embed.ON_ERROR_CHOICES


@pytest.mark.parametrize("package", ["core", "core.captioning", "core.ssl", "core.search"])
def test_every_lazy_export_resolves(package: str) -> None:
    import importlib

    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"
        assert name in dir(module)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        module.nope  # noqa: B018


def test_search_and_scoring_faces_stay_light() -> None:
    """core.search loads matplotlib only when a figure is asked for; the scoring names resolve."""
    code = ("import sys; import core.search; a = 'matplotlib' in sys.modules; "
            "core.search.plot_retrieval; b = 'matplotlib' in sys.modules; "
            "import core.captioning as c; c.score_captions; c.References; "
            "print(a, b, c.References.__module__)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.stdout.split() == ["False", "True", "core.captioning.scoring"], proc.stderr[-2000:]
