"""Soak: a 2,000-frame synthetic-length run in fast mode at small size (issue 6).

    .venv/bin/python bench/soak.py [--frames 2000] [--size 128]

The clip is the shared Sintel RAFT demo played back and forth (a folder of links), so it is
long without new data. Prints resident memory after the first 100 frames and at the end
(bar: flat, growth within 5 %) and frames per second.
"""
from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from _common import DATA, require_data, table
import flowstyle


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    require_data()
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--size", type=int, default=128)
    args = ap.parse_args()
    clip = sorted((DATA / "clips" / "sintel_raft_demo").glob("*.png"))
    order = clip + clip[-2:0:-1]  # 1..10..2, back and forth
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "long"
        src.mkdir()
        for i in range(args.frames):
            os.symlink(order[i % len(order)], src / f"f_{i + 1:05d}.png")
        samples = {}
        start = time.perf_counter()

        def on_event(e):
            if e.get("event") == "frame" and e["index"] in (100, args.frames):
                samples[e["index"]] = (rss_mb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, time.perf_counter())

        flowstyle.stylize(src, "builtin:7", Path(tmp) / "out", flowstyle.Settings(size=args.size, device="cpu"), on_event=on_event)
        first, last = samples[100], samples[args.frames]
        fps = (args.frames - 100) / (last[2] - first[2])
        rows = [{"point": "frame 100", "rss MB": first[0], "peak rss MB": first[1]},
                {"point": f"frame {args.frames}", "rss MB": last[0], "peak rss MB": last[1]}]
        print(table(rows, f"Soak: {args.frames} frames at {args.size} px, fast mode"))
        print(f"growth: rss {100 * (last[0] / first[0] - 1):+.1f} %, peak {100 * (last[1] / first[1] - 1):+.1f} % (bar: within 5 %)")
        print(f"frames per second: {fps:.1f} (whole run {args.frames / (time.perf_counter() - start):.1f})")


if __name__ == "__main__":
    main()
