"""Command line: run the benchmark areas, print one table each, write them all to JSON."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from bench.common import AreaResult, machine, matmul_peak_gflops, print_table, write_json

AREAS = ("caption", "search", "ssl", "distributed")


def _coco_dir() -> Path | None:
    for raw in (os.environ.get("TINY_COCO_DIR"), "../shared/data/tiny_coco", "data/tiny_coco"):
        if raw and (Path(raw) / "val2017").is_dir():
            return Path(raw)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", choices=AREAS, action="append", help="run only this area (repeatable)")
    parser.add_argument("--quick", action="store_true", help="small sizes: about 2-3 minutes on 2 CPU cores")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results",
                        help="folder for the JSON results (default bench/results)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers for the ssl area")
    args = parser.parse_args(argv)

    from core.devices import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    coco = _coco_dir()
    info = machine(device)
    info["fp32_matmul_gflops"] = round(matmul_peak_gflops(device), 1)
    results: list[AreaResult] = []
    for area in args.only or [a for a in AREAS if a != "distributed"]:
        print(f"[{area}] running{' (quick)' if args.quick else ''} ...", flush=True)
        if area == "caption":
            from bench import caption

            results.append(caption.run(device, args.quick, coco, info["cpu_bf16_native"], info["fp32_matmul_gflops"]))
            from bench import caption_families

            results.append(caption_families.run(device, args.quick, coco))
        elif area == "distributed":  # not in the default run: it starts a Ray cluster
            from bench import distributed

            results.append(distributed.run(device, args.quick, coco))
        elif area == "search":
            from bench import search

            results.append(search.run(device, args.quick))
        else:
            from bench import ssl

            results.append(ssl.run(device, args.quick, coco, args.workers, info["fp32_matmul_gflops"]))
    info_end = machine(device)
    info["load_avg_at_end"] = info_end["load_avg_1_5_15"]
    for result in results:
        print_table(result, info)
    print(f"\nload average at start {info['load_avg_1_5_15']}, at end {info['load_avg_at_end']}")
    print(f"results: {write_json(args.out, results, info)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
