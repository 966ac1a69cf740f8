"""Connecting to a Ray cluster (bounded in time), watching it during a run, and sizing the actor
pool from what the cluster has."""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from core.distributed.console import quiet_ray_data, ray_output_hidden
from core.errors import ConfigError

LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
DEFAULT_CONNECT_TIMEOUT_S = 30.0  # how long `connect` waits for a head node to answer
LOST_AFTER_S = 10.0  # the cluster counts as gone after this long without an answer (Ray's own: 60 s)


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("the Ray path needs the 'distributed' extra: pip install 'image-to-text[distributed]' "
                          "(or make install)") from exc
    return ray


def _cannot_connect(address: str, reason: str) -> ConfigError:
    return ConfigError(
        f"cannot connect to a Ray cluster at {address!r} ({reason}). Start one with `ray start --head` "
        "on the head machine and `ray start --address HEAD:6379` on the others, or pass --ray local "
        "to start one on this machine for the run"
    )


def _host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of ``host:port``; ``None`` for other forms."""
    host, _, port = address.rpartition(":")
    return (host.strip("[]"), int(port)) if host and port.isdigit() else None


def _bootstrap_address(address: str) -> str:
    """What ``auto`` means right now (``RAY_ADDRESS``, then the local cluster), as Ray decides it."""
    from ray._private.services import canonicalize_bootstrap_address

    try:
        return canonicalize_bootstrap_address(address) or address
    except (ConnectionError, ValueError) as exc:
        raise _cannot_connect(address, str(exc)) from exc


def answers(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """Whether something accepts a TCP connection at ``host:port`` within ``timeout_s``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wait_for_head(address: str, timeout_s: float) -> None:
    """Return once the head at ``address`` accepts connections; refuse after ``timeout_s``.

    Ray itself retries an absent GCS for many minutes; asking the port first bounds the wait.

    Raises:
        ConfigError: nothing answered in time (the message says how to start a cluster).
    """
    target = _host_port(_bootstrap_address(address) if address == "auto" else address)
    if target is None:
        return  # a form Ray resolves itself; ray.init reports it
    deadline = time.monotonic() + timeout_s
    while not answers(*target, timeout_s=min(1.0, max(0.1, timeout_s))):
        if time.monotonic() >= deadline:
            raise _cannot_connect(address, f"nothing answered at {target[0]}:{target[1]} within "
                                  f"{timeout_s:g} s (--ray-connect-timeout)")
        time.sleep(0.2)


@contextlib.contextmanager
def connect(address: str | None, *, timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
            verbose: bool = False) -> Iterator[Any]:
    """Connect to Ray for the length of a run; yields the ``ray`` module.

    Args:
        address: ``"auto"`` (the running cluster, as Ray resolves it: ``RAY_ADDRESS``, then the
            local one), ``"local"`` (start a cluster on this machine for this run and stop it after),
            or ``"host:port"`` of a head node. ``None`` means ``"auto"``. Ray Client addresses
            (``ray://``) are refused: Ray Data cannot run a job through Ray Client. If this process is already connected, that connection is used and kept.
        timeout_s: how long to wait for the head node to answer before refusing.
        verbose: let Ray's own output (its log lines, C++ logs, actors' output) through; otherwise
            it goes to a log file, named if the run fails.

    Raises:
        ConfigError: Ray is not installed, or no cluster answers at ``address`` within
            ``timeout_s`` (the message says how to start one).
    """
    ray = _ray()
    if ray.is_initialized():
        yield ray
        return
    if (address or "").startswith("ray://"):
        raise ConfigError(
            f"--ray {address}: Ray Client addresses do not work for these jobs (Ray Data's executor "
            "needs a driver on the cluster: through Ray Client it fails with \"'Worker' object has no "
            "attribute 'core_worker'\"). Run the command on a cluster node with --ray HEAD:6379 "
            "(or --ray auto), or submit it as a Ray job: ray job submit --address http://HEAD:8265 "
            "-- img2text caption ...")
    if timeout_s <= 0:
        raise ConfigError(f"the connect timeout must be > 0 s, got {timeout_s:g}")
    address = address or "auto"
    kwargs: dict[str, Any] = {"logging_level": logging.INFO if verbose else logging.ERROR,
                              "log_to_driver": verbose}
    if address == "local":
        kwargs["address"] = "local"
        kwargs["include_dashboard"] = False
    else:
        wait_for_head(address, timeout_s)
        kwargs["address"] = address
        host = address.rsplit(":", 1)[0]
        if host in LOOPBACK_HOSTS:
            # A cluster started with --node-ip-address 127.0.0.1: keep the driver on loopback too,
            # otherwise Ray picks another interface and the driver waits forever to connect.
            kwargs["_node_ip_address"] = "127.0.0.1"
    with ray_output_hidden(not verbose):
        quiet_ray_data(verbose)
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise _cannot_connect(address, str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
        try:
            yield ray
        finally:
            ray.shutdown()


def gcs_target(ray: Any) -> tuple[str, int] | None:
    """``(host, port)`` of the connected cluster's GCS; ``None`` when Ray does not say."""
    try:
        return _host_port(ray.get_runtime_context().gcs_address)
    except (AttributeError, ValueError, RuntimeError):
        return None


@contextlib.contextmanager
def watch_cluster(ray: Any, on_lost: Callable[[], None], *, lost_after_s: float = LOST_AFTER_S,
                  every_s: float = 1.0) -> Iterator[None]:
    """Call ``on_lost`` (from a watcher thread) once the cluster's GCS has not answered for
    ``lost_after_s``: Ray would otherwise end this process itself after 60 s, with status 1 and
    pages of its log, before the driver could say what was kept."""
    target = gcs_target(ray)
    stop = threading.Event()

    def watch() -> None:
        silent_since: float | None = None
        while not stop.wait(every_s):
            if answers(*target, timeout_s=every_s):  # type: ignore[misc]
                silent_since = None
                continue
            silent_since = silent_since or time.monotonic()
            if time.monotonic() - silent_since >= lost_after_s and not stop.is_set():
                on_lost()
                return

    thread = threading.Thread(target=watch, name="img2text-cluster-watch", daemon=True)
    if target is not None:
        thread.start()
    try:
        yield
    finally:
        stop.set()


@dataclass(frozen=True)
class PoolSize:
    """How many actors and what each one reserves."""

    concurrency: int  # actors in the pool
    num_cpus: float  # CPUs reserved per actor
    num_gpus: float  # GPUs reserved per actor


def size_pool(
    resources: dict[str, float],
    *,
    concurrency: int | None = None,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    device: str | None = None,
) -> PoolSize:
    """Defaults from the cluster's resources (``ray.cluster_resources()``).

    GPU clusters (and ``device`` not ``"cpu"``): one GPU and one CPU per actor, one actor per GPU.
    CPU clusters: one CPU per actor and one CPU left free per 8 for reading, Ray Data's own
    tasks and the driver - an actor pool that takes every CPU deadlocks a read stage.

    Raises:
        ConfigError: a negative or zero setting, or a pool that can never be placed.
    """
    gpus, cpus = float(resources.get("GPU", 0)), float(resources.get("CPU", 0))
    use_gpu = gpus > 0 and (device or "auto") != "cpu" and num_gpus != 0
    gpu_each = (1.0 if num_gpus is None else num_gpus) if use_gpu else 0.0
    cpu_each = 1.0 if num_cpus is None else num_cpus
    if gpu_each < 0 or cpu_each < 0 or (concurrency is not None and concurrency < 1):
        raise ConfigError("concurrency must be >= 1 and CPUs/GPUs per actor >= 0")
    if concurrency is None:
        if gpu_each > 0:
            concurrency = max(1, math.floor(gpus / gpu_each))
        else:
            spare = max(1, math.ceil(cpus / 8)) if cpus > 1 else 0
            concurrency = max(1, math.floor((cpus - spare) / cpu_each)) if cpu_each else max(1, int(cpus))
    if cpu_each * concurrency > cpus + 1e-9 and cpu_each > cpus:
        raise ConfigError(f"one actor asks for {cpu_each} CPUs but the cluster has {cpus:g}; "
                          "lower --num-cpus-per-actor")
    if gpu_each > gpus + 1e-9:
        raise ConfigError(f"one actor asks for {gpu_each} GPUs but the cluster has {gpus:g}; "
                          "lower --num-gpus-per-actor or pass --device cpu")
    return PoolSize(concurrency, cpu_each, gpu_each)
