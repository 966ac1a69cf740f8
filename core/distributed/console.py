"""Keeping Ray's own output off the terminal during a run, so only the project's lines show.

Ray writes from C++ (the driver's core worker) straight to file descriptor 2, prints raylet
messages to stdout, and logs through Python (Ray Data's execution lines). ``--verbose`` lets all
of it through; otherwise it goes to a log file for the length of the run, named if the run fails.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import IO

from core.errors import ConfigError, DatasetError

_real_stderr: list[IO[str]] = []  # while Ray's output is hidden: the terminal's stderr
_logs: list[str] = []  # ... and the log file it goes to


def ray_log_note() -> str:
    """`` (Ray's own output: PATH)`` while it is hidden in a log file, else ``""``."""
    return f" (Ray's own output: {_logs[-1]})" if _logs else ""


def project_stderr() -> IO[str]:
    """Where the project's own lines go during a run: the terminal's stderr even while
    :func:`connect` keeps Ray's output off it."""
    return _real_stderr[-1] if _real_stderr else sys.stderr


@contextlib.contextmanager
def ray_output_hidden(hide: bool) -> Iterator[None]:
    """Send file descriptors 1 and 2 to a log file while Ray runs (its C++ logs, its log lines,
    the raylet messages it prints): only the project's lines reach the terminal, through
    :func:`project_stderr`. The log is removed after a run that ended well (or was refused),
    else named on stderr."""
    if not hide:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    log = tempfile.NamedTemporaryFile(prefix="img2text-ray-", suffix=".log", delete=False)
    for fd in (1, 2):
        os.dup2(log.fileno(), fd)
    real = open(os.dup(saved[2]), "w", buffering=1, encoding="utf-8", errors="replace")
    _real_stderr.append(real)
    _logs.append(log.name)
    ok = False
    try:
        yield
        ok = True
    except (ConfigError, DatasetError):
        ok = True  # a refused setting or source: the message says it all, Ray's log adds nothing
        raise
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd in (1, 2):
            os.dup2(saved[fd], fd)
            os.close(saved[fd])
        _real_stderr.remove(real)
        _logs.remove(log.name)
        real.close()
        log.close()
        if ok:
            os.unlink(log.name)
        else:
            print(f"img2text: Ray's own output of this run: {log.name}", file=sys.stderr)


def quiet_ray_data(verbose: bool) -> None:
    """Ray Data logs every execution start, finish and its progress-bar setting at INFO/WARNING."""
    import ray.data  # noqa: F401  (configures its loggers on import)

    logging.getLogger("ray.data").setLevel(logging.INFO if verbose else logging.ERROR)
