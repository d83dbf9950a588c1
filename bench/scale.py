"""Scale-out on Ray (issue 7): frames per second with 1 and 2 workers, and chunk-boundary consistency.

    .venv/bin/python bench/scale.py [--size 256] [--chunks 4]

Runs the 50-frame Sintel cave_2 clip in fast mode as Ray chunks on a local cluster of 1 and
then 2 workers (each a fresh cluster, cold flow cache), and once in a single process. Prints
frames per second and their ratio, the mean difference from the single-process run, and the
warping error at chunk boundaries over the mean inside chunks (bar: <= 1.2).
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import DATA, frames_of, require_data, table
import flowstyle
from flowstyle.scale.chunks import plan_chunks


def main() -> None:
    require_data()
    import ray

    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--chunks", type=int, default=4)
    args = ap.parse_args()
    clip = DATA / "clips" / "sintel_cave_2" / "sintel_cave_2_clean.mp4"
    settings = flowstyle.Settings(size=args.size, device="cpu")
    tmp = Path(tempfile.mkdtemp())
    t = time.perf_counter()
    flowstyle.stylize(clip, "builtin:7", tmp / "single", settings)
    single_fps = 50 / (time.perf_counter() - t)
    ref = frames_of(tmp / "single")
    rows = [{"run": "single process", "workers": 1, "fps": single_fps}]
    for workers in (1, 2):
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
        ray.get(ray.remote(lambda: 0).remote())  # cluster up before timing
        out = tmp / f"ray{workers}"
        t = time.perf_counter()
        report = flowstyle.stylize(clip, "builtin:7", out, settings, ray="", chunks=args.chunks)
        fps = 50 / (time.perf_counter() - t)
        ray.shutdown()
        errs = {i: r["warping_error"] for i, r in report.frames.items() if r.get("warping_error") is not None}
        starts = {c.start + 1 for c in plan_chunks(50, args.chunks)[1:]}
        boundary = np.mean([errs[i] for i in starts])
        inside = np.mean([e for i, e in errs.items() if i not in starts])
        diff = max(np.abs(a - b).mean() for a, b in zip(frames_of(out), ref))
        rows.append({"run": f"ray, {args.chunks} chunks", "workers": workers, "fps": fps,
                     "max mean |diff| vs single (1/255)": diff * 255, "boundary/inside warp err": boundary / inside})
    shutil.rmtree(tmp, ignore_errors=True)
    print(table(rows, f"Scale-out at {args.size} px, sintel_cave_2 (50 frames)"))
    print(f"2 workers / 1 worker: {rows[2]['fps'] / rows[1]['fps']:.2f}x frames per second (2 cores here)")


if __name__ == "__main__":
    main()
