"""End-point error of each flow backend on the ground-truth pairs in ../shared/data/flow (DESIGN 7).

    .venv/bin/python bench/flow_epe.py [--backends dis,deepflow,dis-fast,grader,dis-fast@0:1:4] [--trusted] [--repeat 5]

Prints per pair: mean EPE over pixels with known ground truth, and seconds per flow (the best of ``--repeat``). ``grader`` is the
benchmarks' independent flow (grade_flow.py: SIFT homography + DeepFlow). With ``--trusted`` a second
table says how right each flow is where it trusts itself, which is where a grade with it looks: the
share of pixels that pass the forward-backward check (DESIGN 4.2, both directions computed), the
mean EPE there and the share of them off by more than 3 px (Sintel pairs: occluded pixels left out).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from _common import DATA, dis_fast_with, require_data, table
from grade_flow import PrealignedDeepFlow
from flowstyle.base.tensors import to_tensor
from flowstyle.io import read_image
from flowstyle.motion.flow import flow_backend, read_flo
from flowstyle.motion.masks import consistency_mask


def pairs():
    for d in sorted((DATA / "flow").iterdir()):
        if d.name.startswith("middlebury"):
            yield d.name, d / "frame10.png", d / "frame11.png", d / "flow10.flo"
        else:
            yield d.name, d / "clean" / "frame_0002.png", d / "clean" / "frame_0003.png", d / "frame_0002.flo"


def known_pixels(pair: str, gt: np.ndarray) -> np.ndarray:
    """(H, W) bool: ground truth known there (and, on Sintel pairs, not occluded in the second frame)."""
    known = (np.abs(gt) < 1e9).all(axis=2)
    occlusions = DATA / "flow" / pair / "occlusions" / "frame_0002.png"
    if occlusions.is_file():
        known &= read_image(occlusions)[0].mean(axis=2) < 0.5
    return known


def make_flow(name: str):
    """(rgb_a, rgb_b) -> flow a -> b for a backend name, the benchmarks' grader for ``grader``, or
    ``dis-fast@REFINE:SCALE:DESCENT`` for dis-fast with other DIS settings (_common.dis_fast_with)."""
    if name == "grader":
        return PrealignedDeepFlow().flow
    if name.startswith("dis-fast@"):
        return dis_fast_with(name.partition("@")[2])()
    return flow_backend(name)


def main() -> None:
    require_data()
    ap = argparse.ArgumentParser()
    ap.add_argument("--backends", default="dis,deepflow")
    ap.add_argument("--repeat", type=int, default=1, help="time each flow as the best of this many calls")
    ap.add_argument("--trusted", action="store_true", help="also: how right each flow is where it trusts itself")
    args = ap.parse_args()
    names = args.backends.split(",")
    fns = {n: make_flow(n) for n in names}
    rows, sums, trust_rows = [], {n: [] for n in names}, []
    for name, a, b, gt in pairs():
        ia, ib = read_image(a)[0], read_image(b)[0]
        g = read_flo(gt)
        known = (np.abs(g) < 1e9).all(axis=2)
        row = {"pair": name}
        for n, fn in fns.items():
            dt = np.inf
            for _ in range(args.repeat):  # the best of a few: one call also pays first-call costs
                t = time.perf_counter()
                f = fn(ia, ib)
                dt = min(dt, time.perf_counter() - t)
            epe = float(np.linalg.norm(f - g, axis=2)[known].mean())
            sums[n].append(epe)
            row[f"{n} EPE"] = epe
            row[f"{n} s"] = dt
            if args.trusted:
                back = fn(ib, ia)
                m = (consistency_mask(to_tensor(back), to_tensor(f))[0, 0].numpy() > 0.5)  # on a's pixels
                e = np.linalg.norm(f - g, axis=2)[m & known_pixels(name, g)]
                trust_rows.append({"pair": name, "flow": n, "trusted": float(m.mean()), "EPE there": float(e.mean()),
                                   "share > 3 px": float((e > 3).mean()), "mean |gt|": float(np.linalg.norm(g, axis=2)[known].mean())})
        rows.append(row)
    rows.append({"pair": "MEAN", **{f"{n} EPE": float(np.mean(v)) for n, v in sums.items()}})
    print(table(rows, "Flow end-point error (px) on ground-truth pairs"))
    if trust_rows:
        print(table(trust_rows, "Where each flow trusts itself (forward-backward check): how right it is there"))


if __name__ == "__main__":
    main()
