"""Quality mode (DESIGN 4.4, 7): temporal terms on vs off, the effect of each option, the cost.

    .venv/bin/python bench/quality.py [--size 256] [--frames 4] [--iters-first 50] [--iters 25]
        [--gammas 300 ...] [--ablation-size 160] [--ablation-frames 4] [--ablation-clips sintel_raft_demo]
        [--only main|ablations|cost] [--out bench_out/quality]

The loss network is a seeded random-init VGG-19 saved in torchvision's format (no ImageNet
weights can be had offline here): the numbers measure the mechanics of the optimization and
the temporal terms, not the look real weights give. About 10 minutes on 2 idle CPU cores.

1. Every shared clip at --size: per-frame stylization (no temporal terms, every frame from its
   content with the first-frame budget), the warped start alone, and the temporal loss at the
   default weight and at --gammas. Warping error (Lai et al.) with the engine's flow (DIS) and,
   independently, with DeepFlow; the unweighted style loss of the frames after the first. The
   bar (DESIGN 7): a warping error >= 3x lower at a style loss within 10 %.
2. Each option against the default temporal run, at --ablation-size.
3. Cost on CPU: seconds per iteration and peak resident memory per megapixel.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _common import CLIPS, DATA, REPO, require_data, table
import flowstyle
from flowstyle.motion import FlowCache, FlowEstimator
from flowstyle.io import open_source, read_image
from flowstyle.motion.metrics import sharpness, warping_error
from flowstyle.settings import MODE_DEFAULTS

STYLE = DATA / "styles" / "starry_night.jpg"


def random_vgg(path: Path) -> Path:
    """A seeded random-init VGG-19, saved as a torchvision-format state dict (features only)."""
    import torchvision

    torch.manual_seed(0)
    sd = torchvision.models.vgg19().state_dict()
    torch.save({k: v for k, v in sd.items() if k.startswith("features.")}, path)
    return path


def deepflow_pairs(clip: Path, frames: int, size: int, cache: Path) -> list:
    """DeepFlow (fw, bw) between consecutive input frames, to measure independently of the engine's DIS."""
    src = open_source(clip, (1, frames), size)
    est = FlowEstimator("deepflow", FlowCache(cache))
    fr = [src.read(k) for k in range(frames)]
    src.close()
    return [est.pair(fr[k - 1], fr[k]) for k in range(1, frames)]


def run(clip: Path, out: Path, settings: flowstyle.Settings, cache: Path, df_pairs: list) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    rep = flowstyle.stylize(clip, None, out, settings, cache_dir=cache)
    wall = time.perf_counter() - t
    imgs = [read_image(p)[0] for p in sorted(out.glob("frame_*.png"))]
    later = [rep.frames[i] for i in sorted(rep.frames) if i > 1]
    return {
        "we": float(np.mean([r["warping_error"] for r in later])),
        "we_df": float(np.mean([warping_error(imgs[k - 1], imgs[k], *df_pairs[k - 1]) for k in range(1, len(imgs))])),
        "style": float(np.mean([r["loss"]["style"] for r in later])),
        "content": float(np.mean([r["loss"]["content"] for r in later])),
        "sharp": float(np.mean([sharpness(i) for i in imgs[1:]])),
        "iters": int(sum(r["loss"]["iterations"] for r in rep.frames.values())),
        "stylize_s": float(sum(r["stylize"] for r in rep.frames.values())),
        "wall_s": wall,
    }


def main_table(args, vgg: Path, out: Path) -> list[dict]:
    base = flowstyle.Settings(mode="quality", styles=(flowstyle.StyleRef(image=str(STYLE)),), size=args.size,
                              frames=(1, args.frames), vgg_weights=str(vgg), device="cpu",
                              iterations=args.iters, iterations_first=args.iters_first)
    gamma = MODE_DEFAULTS["quality"]["temporal_weight"]
    variants = {
        "per-frame": dict(temporal_weight=0.0, init="content"),
        "warped start only": dict(temporal_weight=0.0),
        f"temporal, weight {gamma:g} (default)": {},
    }
    for g in args.gammas:
        if g != gamma:
            variants[f"temporal, weight {g:g}"] = dict(temporal_weight=g)
    rows = []
    for name, (clip, _) in CLIPS.items():
        cache = out / "flow" / name
        df = deepflow_pairs(clip, args.frames, args.size, cache)
        res = {v: run(clip, out / name / str(i), dataclasses.replace(base, **kw), cache, df)
               for i, (v, kw) in enumerate(variants.items())}
        ref = res["per-frame"]
        for v, r in res.items():
            rows.append({"clip": name, "variant": v, "warp_err": r["we"], "x_lower": ref["we"] / r["we"],
                         "warp_err_deepflow": r["we_df"], "x_lower_df": ref["we_df"] / r["we_df"],
                         "style_loss": r["style"], "style_vs_pf": r["style"] / ref["style"],
                         "content_loss": r["content"], "sharp_vs_pf": r["sharp"] / ref["sharp"],
                         "s_per_iter": r["stylize_s"] / r["iters"]})
    return rows


ABLATIONS = {
    "default (J=1,2,4, prev-warped, L-BFGS, hard masks, sharpness 3)": {},
    "J=1 only": dict(long_term=(1,)),
    "init prev (unwarped)": dict(init="prev"),
    "init content": dict(init="content"),
    "init random (every frame)": dict(init="random", init_first="random"),
    "temporal weight 300": dict(temporal_weight=300.0),
    "soft masks": dict(mask="soft"),
    "multi-pass N=3 (same budget)": dict(passes=3),
    "luminance-aware temporal": dict(temporal_luminance=True),
    "feature temporal (w=100)": dict(feature_temporal_weight=100.0),
    "sharpness term off": dict(sharpness_weight=0.0),
    "coarse-to-fine (1 level)": dict(coarse_to_fine=1),
    "Adam instead of L-BFGS": dict(optimizer="adam"),
}


def ablation_table(args, vgg: Path, out: Path) -> list[dict]:
    base = flowstyle.Settings(mode="quality", styles=(flowstyle.StyleRef(image=str(STYLE)),),
                              size=args.ablation_size, frames=(1, args.ablation_frames), vgg_weights=str(vgg),
                              device="cpu", iterations=args.iters, iterations_first=args.iters_first)
    rows = []
    clips = args.ablation_clips
    per = {}
    for name in clips:
        clip = CLIPS[name][0]
        cache = out / "flow_small" / name
        df = deepflow_pairs(clip, args.ablation_frames, args.ablation_size, cache)
        pf = run(clip, out / "abl" / name / "pf", dataclasses.replace(base, temporal_weight=0.0, init="content"),
                 cache, df)
        per[name] = {v: run(clip, out / "abl" / name / str(i), dataclasses.replace(base, **kw), cache, df)
                     for i, (v, kw) in enumerate(ABLATIONS.items())}
        per[name]["per-frame"] = pf
    for v in list(ABLATIONS) + ["per-frame"]:
        rs = [(per[c][v], per[c]["per-frame"], per[c][list(ABLATIONS)[0]]) for c in clips]
        g = lambda f: float(np.exp(np.mean([np.log(f(*t)) for t in rs])))  # geometric mean over the clips
        rows.append({"option": v,
                     "warp_x_lower_vs_pf": g(lambda r, pf, d: pf["we"] / r["we"]),
                     "warp_x_lower_df": g(lambda r, pf, d: pf["we_df"] / r["we_df"]),
                     "style_vs_pf": g(lambda r, pf, d: r["style"] / pf["style"]),
                     "content_vs_default": g(lambda r, pf, d: r["content"] / d["content"]),
                     "sharp_vs_pf": g(lambda r, pf, d: r["sharp"] / pf["sharp"]),
                     "time_vs_default": g(lambda r, pf, d: r["stylize_s"] / d["stylize_s"])})
    return rows


_COST = r"""
import json, resource, sys, time, torch
from flowstyle.quality.vgg import vgg19_features
from flowstyle.quality.objective import FrameObjective, LossWeights, StyleBank
from flowstyle.quality.optimize import optimize
from flowstyle.io.styles import StyleRef
vgg, style, h, w, iters = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
net = vgg19_features(weights=vgg)
content = torch.rand(1, 3, h, w)
grams = StyleBank(net).blend([StyleRef(image=style)], max(h, w))
obj = FrameObjective(net, content, grams, weights=LossWeights())
rss = lambda key: int([l.split()[1] for l in open("/proc/self/status") if l.startswith(key)][0]) / 1024
base = rss("VmRSS:")
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
t = time.perf_counter()
optimize(obj, content, iterations=iters)
sec = (time.perf_counter() - t) / iters
print(json.dumps({"s_per_iter": sec, "peak_mb": rss("VmHWM:") - base}))
"""


def cost_table(vgg: Path) -> list[dict]:
    rows = []
    for h, w, iters in ((109, 256, 10), (218, 512, 5), (436, 1024, 3)):
        p = subprocess.run([sys.executable, "-c", _COST, str(vgg), str(STYLE), str(h), str(w), str(iters)],
                           capture_output=True, text=True)
        if p.returncode:
            rows.append({"size": f"{w}x{h}", "error": p.stderr.strip().splitlines()[-1]})
            continue
        r = json.loads(p.stdout.strip().splitlines()[-1])
        mp = h * w / 1e6
        rows.append({"size": f"{w}x{h}", "s_per_iter": r["s_per_iter"], "s_per_iter_per_MP": r["s_per_iter"] / mp,
                     "peak_MB_over_model": r["peak_mb"], "peak_MB_per_MP": r["peak_mb"] / mp})
    return rows


def main() -> None:
    require_data()
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--iters-first", type=int, default=50)
    ap.add_argument("--iters", type=int, default=25)
    ap.add_argument("--gammas", type=float, nargs="*", default=[], help="more temporal weights for table 1, e.g. 300")
    ap.add_argument("--ablation-size", type=int, default=160)
    ap.add_argument("--ablation-frames", type=int, default=4)
    ap.add_argument("--ablation-clips", nargs="+", default=["sintel_raft_demo"], choices=sorted(CLIPS))
    ap.add_argument("--only", choices=("main", "ablations", "cost"), help="run one part only")
    ap.add_argument("--out", default=str(REPO / "bench_out" / "quality"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        vgg = random_vgg(Path(tmp) / "vgg19_random.pth")
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; random-init VGG-19; style {STYLE.name}; "
              f"{args.frames} frames, {args.iters_first}/{args.iters} iterations first/later\n", flush=True)
        if args.only in (None, "main"):
            print(table(main_table(args, vgg, out), f"1. temporal terms vs per-frame at {args.size} px "
                        "(x_lower: per-frame warping error / this one's; bar >= 3 at style_vs_pf <= 1.10)"), "\n",
                  flush=True)
        if args.only in (None, "ablations"):
            print(table(ablation_table(args, vgg, out), f"2. options at {args.ablation_size} px, "
                        f"{args.ablation_frames} frames of {', '.join(args.ablation_clips)} (ratios; geometric mean "
                        "over the clips)"),
                  "\n", flush=True)
        if args.only in (None, "cost"):
            print(table(cost_table(vgg), "3. cost on CPU (L-BFGS iteration = forward + backward through VGG-19 "
                        "to relu5_1; peak resident memory above the loaded model)"), flush=True)
    print(f"\n{time.perf_counter() - t0:.0f} s in all")


if __name__ == "__main__":
    main()
