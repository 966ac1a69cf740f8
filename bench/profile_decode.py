"""Where a greedy caption batch spends its time: ``python -m bench.profile_decode [--batch 16]``.

Times the three stages of ``fast_generate`` on the full-size random-init architecture (encoder,
cross-attention keys/values, 15 decoder steps), then runs ``torch.profiler`` over the decoder
steps and prints the operators that took the time. ``--dtype int8`` profiles the int8 mode.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_decode", description=__doc__)
    parser.add_argument("--batch", type=int, default=16, help="images per batch (default 16)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "int8"))
    parser.add_argument("--rows", type=int, default=12, help="operators to list (default 12)")
    args = parser.parse_args(argv)

    import core
    from bench.caption import MAX_LENGTH, build_model_dir
    from core.captioning.fast_decode import encode
    from core.captioning.gpt2_step import GPT2Stepper

    folder = build_model_dir(Path(tempfile.mkdtemp(prefix="bench-profile-")) / "model")
    cap = core.Captioner(str(folder), device="cpu", dtype=args.dtype)
    pixels = torch.randn(args.batch, 3, 224, 224)
    start = cap.model.generation_config.decoder_start_token_id
    with torch.inference_mode():
        for _ in range(2):  # the first pass warms up (and compiles the int8 encoder)
            t0 = time.perf_counter()
            states = encode(cap.model, pixels)
            t1 = time.perf_counter()
            stepper = GPT2Stepper(cap.model.decoder, states, 1, MAX_LENGTH)
            t2 = time.perf_counter()
            tokens = torch.full((args.batch,), start)
            for pos in range(MAX_LENGTH - 1):
                tokens = stepper.step(tokens, pos).argmax(dim=-1)
            t3 = time.perf_counter()
        steps = MAX_LENGTH - 1
        print(f"{args.dtype}, batch {args.batch}, {torch.get_num_threads()} threads: encoder {t1 - t0:.3f} s, "
              f"cross-attention K/V {t2 - t1:.3f} s, {steps} steps {t3 - t2:.3f} s "
              f"({(t3 - t2) / steps * 1000:.1f} ms a step)")
        from torch.profiler import ProfilerActivity, profile

        stepper = GPT2Stepper(cap.model.decoder, states, 1, MAX_LENGTH)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for pos in range(steps):
                tokens = stepper.step(tokens, pos).argmax(dim=-1)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
