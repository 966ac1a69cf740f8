"""One real two-node Ray cluster for the whole test session, on loopback only.

The head and one worker node are separate ``ray start --block`` processes, each in its own
session (``start_new_session``): stopping or "losing" a node signals exactly the processes of
that session (raylet, agents, the actors it started), never another Ray on the machine (so no
``ray stop``). In CI a cluster that does not come up fails the tests instead of skipping them.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

# Ray Data polls usage metrics from Prometheus when usage stats are on; these clusters have none.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Loopback-only test clusters: no token auth. Without this, a ~/.ray/auth_token left by any local
# `ray.init()` (Ray 2.5x makes one) turns auth on for `ray start` and the drivers here fail.
os.environ["RAY_AUTH_MODE"] = "disabled"

RAY = Path(sys.executable).with_name("ray")
START_TIMEOUT_S = 240  # generous: a loaded 2-core CI machine starts a node in ~10 s
OBJECT_STORE_BYTES = 100_000_000


def free_port() -> int:
    """A free TCP port outside Ray's default worker-port range (10002-19999)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not 10002 <= port <= 19999:
            return port


def session_pids(sid: int) -> list[int]:
    """PIDs of every live process whose session id is ``sid`` (a node and what it started)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[3]) == sid:
            pids.append(int(entry))
    return pids


def signal_session(sid: int, sig: int) -> None:
    for pid in session_pids(sid):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


@dataclass
class RayCluster:
    """A head and worker nodes started by this test session."""

    address: str  # "127.0.0.1:PORT" of the head's GCS
    temp_dir: Path
    log_dir: Path
    head: subprocess.Popen
    workers: list[subprocess.Popen] = field(default_factory=list)

    def start_worker(self) -> subprocess.Popen:
        log = open(self.log_dir / f"worker-{len(self.workers)}.log", "w")
        proc = subprocess.Popen(
            [str(RAY), "start", "--address", self.address, "--node-ip-address", "127.0.0.1",
             "--num-cpus", "1", "--object-store-memory", str(OBJECT_STORE_BYTES),
             "--disable-usage-stats", "--block"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.workers.append(proc)
        return proc

    def kill_node(self, proc: subprocess.Popen) -> None:
        """SIGKILL a node and everything it started: a machine that vanished."""
        signal_session(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)

    def wait_nodes(self, n: int) -> None:
        """Block until ``n`` nodes are alive (checked from a throw-away driver process)."""
        code = (
            "import sys, time, ray\n"
            f"ray.init(address={self.address!r}, _node_ip_address='127.0.0.1', logging_level='ERROR')\n"
            f"deadline = time.time() + {START_TIMEOUT_S}\n"
            f"while sum(x['Alive'] for x in ray.nodes()) != {n}:\n"
            "    if time.time() > deadline: sys.exit('nodes did not come up')\n"
            "    time.sleep(0.5)\n"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                timeout=START_TIMEOUT_S + 60)
        if result.returncode != 0:
            logs = "\n".join(p.read_text()[-2000:] for p in sorted(self.log_dir.glob("*.log")))
            raise RuntimeError(f"Ray cluster at {self.address} did not reach {n} nodes:\n"
                               f"{result.stderr[-3000:]}\n{logs}")

    def stop(self) -> None:
        procs = [*self.workers, self.head]
        for proc in procs:
            signal_session(proc.pid, signal.SIGTERM)
        deadline = time.time() + 5  # a short grace, then SIGKILL: nothing here needs a clean exit
        for proc in procs:
            while session_pids(proc.pid) and time.time() < deadline:
                time.sleep(0.2)
            signal_session(proc.pid, signal.SIGKILL)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def start_cluster(log_dir: Path, *, workers: int = 1, head_cpus: int = 1) -> RayCluster:
    """A head with ``head_cpus`` CPUs and ``workers`` one-CPU worker nodes, all on loopback."""
    port = free_port()
    temp_dir = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: unix socket paths are capped
    log = open(log_dir / "head.log", "w")
    head = subprocess.Popen(
        [str(RAY), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
         "--num-cpus", str(head_cpus), "--object-store-memory", str(OBJECT_STORE_BYTES),
         "--include-dashboard", "false", "--disable-usage-stats", "--temp-dir", str(temp_dir),
         "--block"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    cluster = RayCluster(f"127.0.0.1:{port}", temp_dir, log_dir, head)
    try:
        cluster.wait_nodes(1)
        for n in range(workers):
            cluster.start_worker()
            cluster.wait_nodes(n + 2)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def require_ray() -> None:
    """Fail in CI, skip elsewhere, when Ray is not installed."""
    if importlib.util.find_spec("ray") is None:
        msg = "Ray is not installed: pip install -e '.[distributed]' (make install does)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory):
    """The session's two-node cluster (head + one worker, 1 CPU each)."""
    require_ray()
    log_dir = tmp_path_factory.mktemp("ray-logs")
    cluster = start_cluster(log_dir)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small SSL run folder written by ``save_checkpoint`` (random weights, seed 0)."""
    from core.ssl.checkpoint import save_checkpoint
    from core.ssl.config import SSLConfig
    from core.ssl.models import build_model

    root = tmp_path_factory.mktemp("encoder")
    config = SSLConfig(data_dir=root, out_dir=root / "run", img_size=32, projection_dim=8,
                       embedding_dim=16, device="cpu")
    torch.manual_seed(0)
    model = build_model(config)
    save_checkpoint(root / "run", model, torch.optim.SGD(model.parameters(), lr=0.1), config, 1,
                    torch.get_rng_state())
    return root / "run"
