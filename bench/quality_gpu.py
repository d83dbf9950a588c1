"""Quality mode on CUDA: seconds per frame and peak GPU memory at 1024x436 (issue 16, item 4).

    .venv/bin/python bench/quality_gpu.py [--device cuda] [--size 1024]
    .venv/bin/python bench/quality_gpu.py --device cpu --size 64 --iters 4     # smoke test of the code path

A frame of sintel_raft_demo (sintel is 1024x436 at --size 1024), a seeded random-init VGG-19, the
engine's Stylist (channels-last on CUDA):

- default        a frame after the first with the default recipe: --iters L-BFGS iterations
                 (default: the recipe's 500), float32
- fast           the same frame with --recipe fast's budget (50 iterations), under autocast(bfloat16)
                 when the loss agrees at 1 %
- fast, fresh    a shot's first frame with --recipe fast: coarse-to-fine over 2 levels, 70
                 iterations at full size (175 and 437 below)

Prints seconds per frame and peak memory (torch.cuda.max_memory_allocated; on CPU: not measured).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from _common import require_data, table
from flowstyle.quality.optimize import amp_agrees, coarse_to_fine, optimize
from flowstyle.settings import RECIPES
from quality_speed import one_frame


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def measure(name: str, device: str, run) -> dict:
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    _sync(device)
    t = time.perf_counter()
    res = run()
    _sync(device)
    peak = torch.cuda.max_memory_allocated() / 2 ** 30 if device == "cuda" else float("nan")
    return {"recipe": name, "s_per_frame": time.perf_counter() - t, "peak_gpu_gib": peak,
            "iterations": len(res.losses), "loss": res.parts["total"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--iters", type=int, default=RECIPES["default"]["iterations"],
                    help="the default's budget; the fast rows scale theirs by the same factor")
    a = ap.parse_args()
    require_data()
    if a.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: run on a machine with one, or smoke-test with --device cpu --size 64")
    tmp = Path(tempfile.mkdtemp(prefix="qgpu"))
    s, content, stylist = one_frame(a.size, a.device, tmp)
    full = stylist.objective(content, s.styles)
    optimize(full, content, iterations=2)  # warm-up: kernels, allocator
    rows = [measure("default", a.device, lambda: optimize(full, content, iterations=a.iters))]

    amp = torch.bfloat16 if amp_agrees(full, content, torch.bfloat16, rtol=1e-2) else None
    stylist.amp = amp

    fast, k = RECIPES["fast"], a.iters / RECIPES["default"]["iterations"]
    precision = " (bf16)" if amp else " (fp32: bf16 disagrees)"
    rows.append(measure("fast" + precision, a.device,
                        lambda: optimize(stylist.objective(content, s.styles), content,  # amp set above
                                         iterations=max(1, round(fast["iterations"] * k)))))
    rows.append(measure("fast, fresh" + precision, a.device, lambda: coarse_to_fine(
        lambda sc: stylist.objective(content, s.styles, None, sc), content,
        iterations=max(1, round(fast["iterations_first"] * k)), levels=fast["coarse_to_fine"])))
    h, w = content.shape[-2:]
    dev = torch.cuda.get_device_name() if a.device == "cuda" else "cpu (smoke test: no GPU figures)"
    print(table(rows, f"quality mode, one frame at {w}x{h}, {dev}, random VGG-19"))


if __name__ == "__main__":
    main()
