"""Shared benchmark plumbing: machine description, timing, tables and JSON results."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch


@dataclass
class Row:
    """One measured path; ``ratio`` is filled in against the area's reference row."""

    name: str
    kind: str  # "reference" or "project" (or "floor" for bounds such as encoder-only)
    value: float  # images/s, or ms for latency rows
    unit: str = "img/s"
    ratio: float | None = None
    notes: str = ""


@dataclass
class AreaResult:
    area: str
    settings: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, row: Row, vs: str | None = None) -> Row:
        """Append ``row``; with ``vs`` (a row name) its ratio is value / that row's value."""
        if vs is not None:
            base = next(r for r in self.rows if r.name == vs)
            if row.unit == "ms":  # lower is better: ratio = speed-up
                row.ratio = base.value / row.value if row.value else None
            else:
                row.ratio = row.value / base.value if base.value else None
        self.rows.append(row)
        print(f"  {row.name}: {row.value:.3f} {row.unit}" + (f"  x{row.ratio:.2f}" if row.ratio else ""),
              flush=True)
        return row


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def machine(device: torch.device) -> dict[str, Any]:
    """Hardware, versions and load: printed above every table and stored with the numbers."""
    import transformers

    flags = cpu_flags()
    info: dict[str, Any] = {
        "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_bf16_native": bool(flags & {"avx512_bf16", "amx_bf16"}),
        "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }
    return info


def matmul_peak_gflops(device: torch.device) -> float:
    """Float32 matrix-multiply throughput of ``device`` (GFLOP/s): the ceiling of any fp32 model.

    One large square matmul (2048 on CPU, 8192 on GPU), fastest of three after a warm-up.
    """
    n = 8192 if device.type == "cuda" else 2048
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    sec = best_seconds(lambda: a @ b, device, repeat=3)
    return 2 * n**3 / sec / 1e9


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_seconds(fn: Callable[[], Any], device: torch.device, repeat: int = 1, warmup: bool = True) -> float:
    """Fastest of ``repeat`` timed calls (after one untimed warm-up call when ``warmup``).

    The minimum is the least disturbed run on a shared machine; the load is reported next to it.
    """
    if warmup:
        fn()
        sync(device)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return min(times)


def interleaved_best(fns: dict[str, Callable[[], Any]], device: torch.device, rounds: int = 3) -> dict[str, float]:
    """Fastest seconds of each of ``fns``, timed in turn ``rounds`` times (after one warm-up call
    each), so a change of the machine's load hits every path alike."""
    for fn in fns.values():
        fn()
        sync(device)
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            sync(device)
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def median_ms(fn: Callable[[], Any], device: torch.device, n: int) -> float:
    fn()
    sync(device)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def print_table(result: AreaResult, info: dict[str, Any]) -> None:
    print(f"\n== {result.area} ==  {info['date_utc']}  load {info['load_avg_1_5_15']}")
    print(f"   {info['cpu']} | {info['cpu_cores']} cores, {info['torch_threads']} torch threads | "
          f"device {info['device']}{' (' + info['gpu'] + ')' if info['gpu'] else ''} | "
          f"torch {info['torch']}, transformers {info['transformers']}"
          + (f" | fp32 matmul {info['fp32_matmul_gflops']} GFLOP/s" if "fp32_matmul_gflops" in info else ""))
    print("   settings: " + ", ".join(f"{k}={v}" for k, v in result.settings.items()))
    width = max(len(r.name) for r in result.rows) if result.rows else 10
    print(f"   {'path':<{width}}  {'kind':<9} {'value':>10}  {'unit':<6} {'ratio':>7}  notes")
    for r in result.rows:
        ratio = f"x{r.ratio:.2f}" if r.ratio is not None else "-"
        print(f"   {r.name:<{width}}  {r.kind:<9} {r.value:>10.3f}  {r.unit:<6} {ratio:>7}  {r.notes}")
    for key, value in result.extra.items():
        print(f"   {key}: {value}")


def write_json(out_dir: Path, results: list[AreaResult], info: dict[str, Any]) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = out_dir / f"bench-{stamp}.json"
    data = {"machine": info, "areas": [asdict(r) for r in results]}
    path.write_text(json.dumps(data, indent=2))
    return path
