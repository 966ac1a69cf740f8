"""int8's first caption in a fresh process (issue: within 15 s of choosing int8 on 2 CPU cores).

A new Python process imports ``core``, torch, transformers and torchao (reported apart: a running
app has done that before anyone picks int8), then times what choosing int8 costs until the first caption is back: reading the weights,
quantising to int8, and one caption. With the torchao kernel (CPUs with int8 dot-product
instructions) that caption runs on the eager int8 encoder while the compiled encoder builds in a
background thread (which competes for the same cores); the time until the compiled encoder is in
use is reported too. The fbgemm kernel (other CPUs) compiles nothing. Inductor's on-disk cache is pointed at
an empty folder, so nothing is reused from an earlier run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import core
core.quiet_libraries()
import torch, torchao.quantization, transformers  # what a running app has imported already
from transformers import VisionEncoderDecoderModel
t1 = time.perf_counter()
cap = core.Captioner(sys.argv[1], device="cpu", dtype="int8")
t2 = time.perf_counter()
text = cap.caption(sys.argv[2])
t3 = time.perf_counter()
cap.wait_compiled()
t4 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_quantise_s": t2 - t1, "first_caption_s": t3 - t1,
                  "compiled_ready_s": t4 - t1, "caption": text, "kernel": cap.int8_kernel}))
"""


def first_use(folder: Path, image: Path, timeout_s: float = 900) -> dict[str, str]:
    """``res.extra`` lines: seconds from choosing int8 to the first caption, in a fresh process."""
    with tempfile.TemporaryDirectory(prefix="bench-inductor-") as cache:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
        done = subprocess.run([sys.executable, "-c", _CHILD, str(folder), str(image)], env=env,
                              capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        return {"int8 first use in a fresh process": f"failed: {done.stderr.strip().splitlines()[-1:]}"}
    got = json.loads(done.stdout.strip().splitlines()[-1])
    first = (f"{got['first_caption_s']:.1f} s (kernel {got['kernel']}; load + quantise {got['load_quantise_s']:.1f} s; "
             f"imports before it {got['import_s']:.1f} s)")
    out = {"int8 first use, fresh process: choose -> first caption (target <= 15 s)": first}
    if got["kernel"] == "torchao":  # fbgemm runs eagerly: nothing compiles
        out["int8 first use, fresh process: choose -> compiled encoder in use"] = (
            f"{got['compiled_ready_s']:.1f} s (built in the background; empty Inductor cache)")
    return out
