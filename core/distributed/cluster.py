"""Connecting to a Ray cluster and sizing the actor pool from what the cluster has."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from core.errors import ConfigError

LOOPBACK_HOSTS = ("127.0.0.1", "localhost")


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("the Ray path needs the 'distributed' extra: pip install 'image-to-text[distributed]' "
                          "(or make install)") from exc
    return ray


@contextlib.contextmanager
def connect(address: str | None) -> Iterator[Any]:
    """Connect to Ray for the length of a run; yields the ``ray`` module.

    Args:
        address: ``"auto"`` (the running cluster, as Ray resolves it: ``RAY_ADDRESS``, then the
            local one), ``"local"`` (start a cluster on this machine for this run and stop it after),
            ``"host:port"`` of a head node, or ``"ray://host:10001"`` (Ray Client). ``None`` means
            ``"auto"``. If this process is already connected, that connection is used and kept.

    Raises:
        ConfigError: Ray is not installed, or no cluster answers at ``address`` (the message says
            how to start one).
    """
    ray = _ray()
    if ray.is_initialized():
        yield ray
        return
    address = address or "auto"
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": True}
    if address == "local":
        kwargs["address"] = "local"
        kwargs["include_dashboard"] = False
    else:
        kwargs["address"] = address
        host = address.removeprefix("ray://").rsplit(":", 1)[0]
        if host in LOOPBACK_HOSTS and not address.startswith("ray://"):
            # A cluster started with --node-ip-address 127.0.0.1: keep the driver on loopback too,
            # otherwise Ray picks another interface and the driver waits forever to connect.
            kwargs["_node_ip_address"] = "127.0.0.1"
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConfigError(
            f"cannot connect to a Ray cluster at {address!r} ({exc}). Start one with `ray start --head` "
            "on the head machine and `ray start --address HEAD:6379` on the others, or pass --ray local "
            "to start one on this machine for the run"
        ) from exc
    try:
        yield ray
    finally:
        ray.shutdown()


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
