"""Trained video networks (``flowstyle train``, issue 17) against the shipped network, alone and with fast mode's solve.

    .venv/bin/python bench/video_network.py --stable stable7.pt --recurrent recurrent7.pt
        [--size 512] [--frames 50] [--clips sintel_raft_demo,...] [--out bench_out/video_network]

The networks must be trained with the benchmark clips held out; the README's command trains on the
six style paintings and the pairs of ../shared/data/flow except middlebury-RubberWhale and
sintel-cave_2 (frames of two of these clips; sintel_raft_demo's frames differ from every training
pair's), so none of the three clips is seen in training.

Per clip, for the shipped network per-frame, the stable network alone, the recurrent network alone,
and each of them followed by fast mode's temporal solve (the engine run with ``--stylizer``):
- warping error (Lai et al.) graded with an INDEPENDENT flow (OpenCV DeepFlow on the input frames,
  cached in OUT/grade_flow; the engine uses DIS), and its ratio to the shipped network per-frame;
- sharpness (mean gradient magnitude) ratio;
- crop style distance (bench/stylizers.py: Magenta style embeddings of 256-px crops) from the style:
  the painting's embedding, or for a built-in style the mean crop embedding of the shipped network's
  per-frame output; and its ratio;
- seconds per frame (decode + network + flow + solve, without the report's measuring).
Prints each network's training time (from its file). Bars (issue 17): the stable network alone has
warp ratio <= 0.5 with style distance ratio <= 1.1 and sharpness ratio >= 0.9; the recurrent network
plus the solve has a lower warping error than today's fast mode (shipped + solve) at sharpness >= 0.95x of it.
"""
from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

import numpy as np

from _common import CLIPS, DATA, REPO, require_data, table
from fast_vs_perframe import graded_error, run
from stylizers import crop_distance
import flowstyle  # noqa: E402
from flowstyle.fast.magenta import MagentaStylizer
from flowstyle.fast.video_net import load_video_network
from flowstyle.io import open_source, read_image
from flowstyle.io.styles import parse_style
from flowstyle.motion import FlowCache, FlowEstimator
from flowstyle.motion.metrics import sharpness


def configs(stable: str | None, recurrent: str | None) -> dict[str, dict]:
    """name -> Settings changes; 'shipped per-frame' is the reference of every ratio."""
    out = {"shipped per-frame": {"temporal_weight": 0.0}, "shipped + solve (fast mode)": {}}
    for name, path in (("stable", stable), ("recurrent", recurrent)):
        if path:
            out[f"{name} alone"] = {"stylizer": path, "temporal_weight": 0.0}
            out[f"{name} + solve"] = {"stylizer": path}
    return out


def main() -> None:
    require_data()
    ap = argparse.ArgumentParser()
    ap.add_argument("--stable", help="a stable network from 'flowstyle train --variant stable'")
    ap.add_argument("--recurrent", help="a recurrent network from 'flowstyle train --variant recurrent'")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--frames", type=int, default=50, help="at most this many frames of each clip")
    ap.add_argument("--clips", default=",".join(CLIPS), help="comma list of the shared clips")
    ap.add_argument("--out", default=str(REPO / "bench_out" / "video_network"))
    args = ap.parse_args()
    out = Path(args.out)
    headers = {k: load_video_network(p)[0] for k, p in (("stable", args.stable), ("recurrent", args.recurrent)) if p}
    styles = {h["style"] for h in headers.values()}
    if len(styles) != 1:
        raise SystemExit(f"give networks trained for one style (got {sorted(styles) or 'none'})")
    style = parse_style(styles.pop())
    grader = FlowEstimator("deepflow", FlowCache(out / "grade_flow"))
    embed = MagentaStylizer()
    painting = embed.style_vector(read_image(style.image)[0]) if style.image else None
    base = flowstyle.Settings(size=args.size, device="cpu", styles=(style,))
    rows = []
    for clip_name in args.clips.split(","):
        clip = CLIPS[clip_name][0]
        src = open_source(clip)
        settings = dataclasses.replace(base, frames=(1, min(args.frames, len(src))))
        src.close()
        results = {}
        for name, change in configs(args.stable, args.recurrent).items():
            slug = re.sub(r"[^a-z0-9]+", "_", name).strip("_")
            summary, frames = run(clip, out / clip_name / slug, dataclasses.replace(settings, **change))
            results[name] = (summary, frames)
        ref_frames = results["shipped per-frame"][1]
        target = painting if painting is not None else np.mean(
            [embed.style_vector(f) for f in ref_frames], axis=0)
        ref = None
        for name, (summary, frames) in results.items():
            err = graded_error(clip, args.size, frames, grader)
            sharp = float(np.mean([sharpness(f) for f in frames]))
            dist = float(np.mean([crop_distance(embed, f, target) for f in frames]))
            ref = ref or (err, sharp, dist)
            rows.append({"clip": clip_name, "network": name, "frames": len(frames),
                         "s/frame": summary["seconds_per_frame"], "warp err": err, "warp ratio": err / ref[0],
                         "sharp ratio": sharp / ref[1], "style dist": dist, "dist ratio": dist / ref[2]})
            print(rows[-1], flush=True)
    names = list(dict.fromkeys(r["network"] for r in rows))
    means = [{"clip": "mean", "network": n,
              **{k: float(np.mean([r[k] for r in rows if r["network"] == n]))
                 for k in ("s/frame", "warp ratio", "sharp ratio", "dist ratio")}} for n in names]
    print(table(rows + means, f"video networks at {args.size} px ({style}), graded with DeepFlow (independent of the "
                              f"engine's {base.resolved().flow}); ratios to the shipped network per-frame; CPU threads "
                              f"{__import__('torch').get_num_threads()}"))
    for kind, h in headers.items():
        t = h["training"]
        print(f"{kind}: {h['steps']} steps at {t['size']} px, batch {t['batch']}, {h['seconds']:.0f} s of training "
              f"({h['data']})")
    m = {r["network"]: r for r in means}
    if "stable alone" in m:
        s = m["stable alone"]
        ok = s["warp ratio"] <= 0.5 and s["dist ratio"] <= 1.1 and s["sharp ratio"] >= 0.9
        print(f"bar stable alone: warp ratio {s['warp ratio']:.3f} <= 0.5, style dist ratio {s['dist ratio']:.3f} "
              f"<= 1.1, sharpness {s['sharp ratio']:.3f} >= 0.9: {'met' if ok else 'NOT met'}")
    if "recurrent + solve" in m:
        r, f = m["recurrent + solve"], m["shipped + solve (fast mode)"]
        ok = r["warp ratio"] < f["warp ratio"] and r["sharp ratio"] >= 0.95 * f["sharp ratio"]
        print(f"bar recurrent + solve: warp ratio {r['warp ratio']:.3f} < fast mode's {f['warp ratio']:.3f}, "
              f"sharpness {r['sharp ratio']:.3f} >= 0.95 x {f['sharp ratio']:.3f}: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
