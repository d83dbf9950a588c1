"""End-point error of each flow backend on the ground-truth pairs in ../shared/data/flow (DESIGN 7).

    .venv/bin/python bench/flow_epe.py [--backends dis,deepflow]

Prints per pair: mean EPE over pixels with known ground truth, and seconds per flow.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from _common import DATA, require_data, table
from flowstyle.motion.flow import flow_backend, read_flo
from flowstyle.io import read_image


def pairs():
    for d in sorted((DATA / "flow").iterdir()):
        if d.name.startswith("middlebury"):
            yield d.name, d / "frame10.png", d / "frame11.png", d / "flow10.flo"
        else:
            yield d.name, d / "clean" / "frame_0002.png", d / "clean" / "frame_0003.png", d / "frame_0002.flo"


def main() -> None:
    require_data()
    ap = argparse.ArgumentParser()
    ap.add_argument("--backends", default="dis,deepflow")
    args = ap.parse_args()
    names = args.backends.split(",")
    fns = {n: flow_backend(n) for n in names}
    rows, sums = [], {n: [] for n in names}
    for name, a, b, gt in pairs():
        ia, ib = read_image(a)[0], read_image(b)[0]
        g = read_flo(gt)
        known = (np.abs(g) < 1e9).all(axis=2)
        row = {"pair": name}
        for n, fn in fns.items():
            t = time.perf_counter()
            f = fn(ia, ib)
            dt = time.perf_counter() - t
            epe = float(np.linalg.norm(f - g, axis=2)[known].mean())
            sums[n].append(epe)
            row[f"{n} EPE"] = epe
            row[f"{n} s"] = dt
        rows.append(row)
    rows.append({"pair": "MEAN", **{f"{n} EPE": float(np.mean(v)) for n, v in sums.items()}})
    print(table(rows, "Flow end-point error (px) on ground-truth pairs"))


if __name__ == "__main__":
    main()
