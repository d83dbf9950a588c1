"""Keyframe-style overrides on the shared clips (issue 5).

    .venv/bin/python bench/keyframes.py [--size 256] [--out bench_out/keyframes]

Per clip:
- painted override: PSNR of the painted frame in the output (bar: >= 40 dB), and how much
  closer its neighbours come to the painted look (mean abs difference with / without the
  override, at distance 1, 2 and 4 on both sides; < 1 means they moved towards it);
- two style keys (A at 1/4 of the clip, linear, B at 3/4): share of frames before the first
  key that are closer (style-predictor embedding) to A than to B, and of frames after the
  second key closer to B;
- warping error across the transition, linear dissolve vs hard cut (constant): mean and peak.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from _common import CLIPS, REPO, frames_of, require_data, table
import flowstyle
from flowstyle.io import open_source, read_image, write_png
from flowstyle.fast.magenta import MagentaStylizer
from flowstyle.io.styles import StyleRef

A, B, PAINT = 3, 18, 12


def main() -> None:
    require_data()
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--out", default=str(REPO / "bench_out" / "keyframes"))
    args = ap.parse_args()
    root = Path(args.out)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    sa, sb, sp = (MagentaStylizer([StyleRef(builtin=i)]) for i in (A, B, PAINT))
    settings = flowstyle.Settings(size=args.size, device="cpu")
    rows = []
    for name, (clip, _) in CLIPS.items():
        d = root / name
        d.mkdir()
        src = open_source(clip, max_side=args.size)
        n = len(src)
        o = n // 2
        write_png(d / "painted.png", sp(src.read(o).rgb))
        (d / "over.json").write_text(json.dumps({"overrides": [{"frame": o + 1, "image": "painted.png"}]}))
        flowstyle.stylize(clip, f"builtin:{A}", d / "plain", settings)
        flowstyle.stylize(clip, f"builtin:{A}", d / "over", settings, keyframes=str(d / "over.json"))
        plain, over = frames_of(d / "plain"), frames_of(d / "over")
        painted = read_image(d / "painted.png")[0]
        psnr = 10 * np.log10(1 / max(np.mean((over[o] - painted) ** 2), 1e-12))
        pull = {}
        for dist in (1, 2, 4):
            ks = [k for k in (o - dist, o + dist) if 0 <= k < n]
            pull[f"pull d={dist}"] = float(np.mean([np.abs(over[k] - painted).mean() / np.abs(plain[k] - painted).mean() for k in ks]))

        k1, k2 = max(1, n // 4), max(2, 3 * n // 4)
        errs = {}
        for interp in ("linear", "constant"):
            keys = {"keys": [{"frame": k1 + 1, "style": f"builtin:{A}", "interpolation": interp}, {"frame": k2 + 1, "style": f"builtin:{B}"}]}
            rep = flowstyle.stylize(clip, f"builtin:{A}", d / interp, settings, keyframes=keys)
            errs[interp] = np.array([rep.frames[i]["warping_error"] for i in range(k1 + 2, k2 + 3) if i <= n])
        keyed = frames_of(d / "linear")
        closer = []
        for k in list(range(0, k1)) + list(range(k2, n)):
            rgb = src.read(k).rgb
            e = sa.style_vector(keyed[k])
            da, db = (np.linalg.norm(e - sa.style_vector(s(rgb))) for s in (sa, sb))
            closer.append((k < k1 and da < db) or (k >= k2 and db < da))
        rows.append({"clip": name, "frames": n, "painted PSNR dB": float(psnr), **pull,
                     "keys: frames on the right side": f"{sum(closer)}/{len(closer)}",
                     "warp linear mean": float(errs["linear"].mean()), "warp cut mean": float(errs["constant"].mean()),
                     "warp linear peak": float(errs["linear"].max()), "warp cut peak": float(errs["constant"].max())})
        print(f"{name}: done", flush=True)
    print(table(rows, f"Keyframes at {args.size} px (style keys builtin:{A} -> builtin:{B}; painted = builtin:{PAINT})"))
    print("bars: painted PSNR >= 40 dB; pull < 1 (neighbours closer to the painted look); linear transition below the cut")


if __name__ == "__main__":
    main()
