"""A fresh virtual environment from a generated folder's ``requirements.txt``, as a platform builds one.

One exception, for time and disk: torch, torchvision, triton and the CUDA wheels (about 4 GB
unpacked) come from this test environment through a ``.pth`` file pointing at a folder of links
to them (pip sees them installed at the pinned versions, so it resolves and installs everything
else from the requirements, from PyPI and pip's cache). The project's own packages are never
installed: the app must import them from the folder, as on a Space.
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import subprocess
import sys
import time
from pathlib import Path

HOST_PROVIDED = ("torch", "torchvision", "triton")  # and every nvidia-* / cuda-* distribution
INSTALL_TIMEOUT = 1500  # seconds for one `pip install -r` (a cold pip cache downloads ~1 GB)


def host_torch(dest: Path) -> Path:
    """``dest`` filled with links to the installed torch family's top-level folders and dist-infos."""
    dest.mkdir(parents=True, exist_ok=True)
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower()
        if name not in HOST_PROVIDED and not name.startswith(("nvidia-", "cuda-")):
            continue
        for top in {Path(f).parts[0] for f in dist.files or []} - {".."}:
            source = Path(str(dist.locate_file(top)))
            if source.exists() and not (dest / top).exists():
                (dest / top).symlink_to(source)
    return dest


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for the folder's processes: no PYTHONPATH (nothing from the checkout), offline hub."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "GRADIO_ANALYTICS_ENABLED": "False", **extra}


def venv_from_requirements(folder: Path, venv: Path, shim: Path) -> tuple[Path, float]:
    """Create ``venv`` and ``pip install -r folder/requirements.txt`` into it.

    Returns:
        The venv's python and the seconds the install took (printed by the tests; -s shows it).
    """
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (Path(site) / "host-torch.pth").write_text(f"{host_torch(shim)}\n")
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-compile", "-r", str(folder / "requirements.txt")],
                          cwd=folder, env=clean_env(), capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
    if done.returncode:
        raise AssertionError(f"pip install -r requirements.txt failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return python, time.monotonic() - start
