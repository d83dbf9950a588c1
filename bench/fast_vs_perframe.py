"""Fast mode against plain per-frame stylization with the same network (issue 13, DESIGN 7).

    .venv/bin/python bench/fast_vs_perframe.py [--size 1024] [--style builtin:7 --style PAINTING.jpg]
                                               [--variants default,no-context,...] [--out bench_out]
                                               [--dis-fast REFINE,SCALE,DESCENT]

Per clip and style, each graded with an INDEPENDENT flow on the input frames, cached in
OUT/grade_flow, never the engine's DIS flow: by default grade_flow.py's (a SIFT homography takes the
camera's motion out, OpenCV DeepFlow finds the rest; plain DeepFlow loses sintel_cave_2's fast pans),
with ``--grader deepflow`` OpenCV DeepFlow alone:
- seconds per frame: per-frame stylization = decode + network + write; fast mode = everything the
  user waits for (flow, masks, solve, the report's own warping-error measurement included);
- warping error (Lai et al.) of each and their ratio, and that of the input frames themselves (how much
  the footage changes along the grader's flow: motion blur, light; a stylization that follows the
  input cannot be steadier than the input allows, so a clip with a high input figure caps the ratio);
- sharpness (mean gradient magnitude) ratio; style drift (DESIGN 7, Magenta style embedding);
- the copy ratio: the warp ratio of frames that copy fast mode's previous output, warped by the
  engine's flow, wherever the engine's masks trust it (consistency mask lowered by ``mask_context``)
  and take the per-frame stylization elsewhere, graded the same way. It shows how much of the grade
  is set by the engine's flow and masks rather than by the solve: where the two flows disagree by a
  pixel or two (large motion) the strokes no longer line up, and the grade counts that however steady
  the output is. Not a bound (the solve, with its pull to the per-frame stylization, can beat it);
- the warp ratio by motion: over the frames in each band of the grader's median motion (MOTION_BANDS),
  a second table. The grader, too, is less right the further things move (bench/flow_epe.py --trusted);
- the ghost ratio on a constructed clip (tests/ghost_clip.py: a textured square moving 8 px a
  frame over a still painting): distance to per-frame stylization in the strips just behind and
  ahead of the square, over that distance on static ground; also at 4 and 2 px a frame (the same
  16-px strips), where the bar is not met: slower edges leave more of the past's look beside them
  relative to static ground (the context mask spreads from a thinner unreliable band).
Bars (issue 13): warp ratio <= 0.4, sharpness >= 0.95, drift <= 1.15, time <= 1.3, ghost <= 2.
``--variants`` runs the ablations of seed 000's parts (see VARIANTS). Writes a labelled contact
sheet per clip (start / middle / end; per-frame above, fast mode below).
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np

from _common import CLIPS, DATA, REPO, dis_fast_with, frames_of, require_data, table

sys.path.insert(0, str(REPO / "tests"))
import flowstyle  # noqa: E402
from flowstyle.fast.magenta import MagentaStylizer  # noqa: E402
from flowstyle.io import open_source  # noqa: E402
from flowstyle.io.styles import parse_style  # noqa: E402
from flowstyle.motion import FLOW_BACKENDS, FlowCache, FlowEstimator  # noqa: E402
from flowstyle.base.tensors import to_array, to_tensor  # noqa: E402
from flowstyle.motion.metrics import sharpness, style_drift, warping_error  # noqa: E402
from flowstyle.motion.trace import trace  # noqa: E402
from ghost_clip import ghost_ratio, make_ghost_clip  # noqa: E402
from grade_flow import PrealignedDeepFlow  # noqa: E402

SLOW_GHOSTS = (4, 2)  # px a frame: the ghost clip again, slower
# bands of the grader's median motion (px a frame at the graded size) for the warp ratio by motion. How far
# the grader itself can be trusted with motion (bench/flow_epe.py --trusted, Sintel ground truth): on
# cave_2's pair (15 px a frame) 3 % of the pixels it trusts are off by more than 3 px, on market_5's
# (32 px a frame) 38 %, so frames above 30 px a frame are graded by a flow that may be wrong where it looks
MOTION_BANDS = [0, 10, 20, 30]

# name -> Settings changes from the default; each switches one of seed 000's parts (or the old solver)
VARIANTS = {
    "default": {},
    "no-sources": {"stroke_sources": 0},  # with a style image the default has them
    "carry-0": {"carry_detail": 0.0},
    "carry-0-keep-detail-1": {"carry_detail": 0.0, "keep_detail": 1.0},  # the defaults before carry
    "keep-detail-0": {"keep_detail": 0.0},
    "keep-detail-1": {"keep_detail": 1.0},
    "gradient-g0": {"gradient_weight": 0.0},
    "no-context": {"mask_context": 0.0},
    "incremental": {"incremental_mask": 4},
    "multi-scale": {"flow_scales": 2},
    "fusion-1,2,4": {"long_term": (1, 2, 4)},
    "old-defaults": {"solver": "band", "mask_context": 0.0, "temporal_weight": 1.0},
}


def run(clip: Path, out: Path, settings: flowstyle.Settings) -> tuple[dict, list[np.ndarray]]:
    shutil.rmtree(out, ignore_errors=True)
    report = flowstyle.stylize(clip, None, out, settings)
    return report.summary(), frames_of(out)


def graded_errors(clip: Path, size: int, outputs: list[np.ndarray], grader) -> np.ndarray:
    """Warping error of each of ``outputs``' frames 2.. with the grader's flow on the input frames: (T − 1,)."""
    src = open_source(clip, None, size)
    errors, prev = [], src.read(0)
    for k in range(1, len(outputs)):
        cur = src.read(k)
        fw, bw = grader.pair(prev, cur)
        errors.append(warping_error(outputs[k - 1], outputs[k], fw, bw))
        prev = cur
    src.close()
    return np.array(errors)


def graded_error(clip: Path, size: int, outputs: list[np.ndarray], grader) -> float:
    """Mean warping error of ``outputs`` with the grader's flow on the input frames."""
    return float(graded_errors(clip, size, outputs, grader).mean())


def grader_motion(clip: Path, size: int, frames: int, grader) -> np.ndarray:
    """The median length of the grader's backward flow at frames 2..: how far each frame moved, (T − 1,) px."""
    src = open_source(clip, None, size)
    motion, prev = [], src.read(0)
    for k in range(1, frames):
        cur = src.read(k)
        motion.append(float(np.median(np.linalg.norm(grader.pair(prev, cur)[1], axis=-1))))
        prev = cur
    src.close()
    return np.array(motion)


def by_motion(motion: np.ndarray, fast: np.ndarray, per_frame: np.ndarray) -> list[dict]:
    """The warp ratio over the frames in each band of the grader's motion (MOTION_BANDS, px a frame)."""
    rows = []
    for lo, hi in zip(MOTION_BANDS, MOTION_BANDS[1:] + [np.inf]):
        pick = (motion >= lo) & (motion < hi)
        if pick.any():
            rows.append({"motion px/frame": f"{lo}-{hi:g}", "frames": int(pick.sum()),
                         "warp ratio": float(fast[pick].mean() / per_frame[pick].mean())})
    return rows


def copied_error(clip: Path, settings: flowstyle.Settings, fast: list[np.ndarray], per_frame: list[np.ndarray],
                 grader, engine: FlowEstimator) -> float:
    """Warp error, graded as :func:`graded_error`, of frames that copy fast mode's previous output warped by
    the engine's flow wherever its masks trust it (traced as the solve traces it: the consistency mask,
    lowered by ``mask_context``) and take the per-frame stylization elsewhere: a step at each frame, not a run."""
    src = open_source(clip, None, settings.size)
    errors, prev = [], src.read(0)
    for k in range(1, len(fast)):
        cur = src.read(k)
        traced = trace(engine, cur, [(1, prev, fast[k - 1])], device="cpu", warp_mode=settings.warp_mode,
                       context=settings.mask_context * settings.stroke_scale)
        trust = traced.masks[1]
        copied = trust * traced.warped[1] + (1.0 - trust) * to_tensor(per_frame[k])
        fw, bw = grader.pair(prev, cur)
        errors.append(warping_error(fast[k - 1], to_array(copied), fw, bw))
        prev = cur
    src.close()
    return float(np.mean(errors))


def contact_sheet(per_frame: list, fast: list, path: Path) -> None:
    picks = sorted({0, len(per_frame) // 2, len(per_frame) - 1})
    rows = []
    for label, imgs in (("per-frame", per_frame), ("flowstyle fast", fast)):
        row = (np.concatenate([imgs[i] for i in picks], axis=1) * 255).astype(np.uint8).copy()
        for j, i in enumerate(picks):
            x = j * imgs[0].shape[1] + 8
            cv2.putText(row, f"{label}, frame {i + 1}", (x, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 3)
            cv2.putText(row, f"{label}, frame {i + 1}", (x, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 1)
        rows.append(row)
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))


def seconds(summary: dict, *, measured: bool) -> float:
    """What the user waited per frame: the stages, plus the report's measuring step for fast mode."""
    return summary["seconds_per_frame"] + (summary["measure_seconds_per_frame"] if measured else 0.0)


def main() -> None:
    require_data()
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--style", action="append", help="builtin:N or a painting (default: builtin:7 and starry_night.jpg)")
    ap.add_argument("--variants", default="default", help=f"comma list of {', '.join(VARIANTS)}, or 'all'")
    ap.add_argument("--try", dest="extra", action="append", default=[], metavar="NAME:FIELD=VALUE,...",
                    help="one more variant, e.g. 'g2:gradient_weight=2.0' (Settings fields, Python literals)")
    ap.add_argument("--clips", default=",".join(CLIPS), help="comma list of the shared clips")
    ap.add_argument("--grader", choices=("prealigned", "deepflow"), default="prealigned",
                    help="the independent flow that grades: homography + DeepFlow (default), or DeepFlow alone")
    ap.add_argument("--out", default=str(REPO / "bench_out"))
    ap.add_argument("--dis-fast", metavar="REFINE,SCALE,DESCENT",
                    help="an experiment: the engine's dis-fast flow with these DIS settings (the FAST preset: 5,2,16)")
    args = ap.parse_args()
    if args.dis_fast:  # every dis-fast flow in this process, the runs' and the copy ratio's
        FLOW_BACKENDS["dis-fast"] = dis_fast_with(args.dis_fast)
    out = Path(args.out)
    styles = args.style or ["builtin:7", str(DATA / "styles" / "starry_night.jpg")]
    variants = list(VARIANTS) if args.variants == "all" else [v for v in args.variants.split(",") if v]
    for spec in args.extra:
        name, _, fields = spec.partition(":")
        VARIANTS[name] = {k: ast.literal_eval(v) for k, v in (f.split("=", 1) for f in fields.split(",") if f)}
        variants.append(name)
    base = flowstyle.Settings(size=args.size, device="cpu")
    cache = FlowCache(out / "grade_flow")
    grader = PrealignedDeepFlow(cache) if args.grader == "prealigned" else FlowEstimator("deepflow", cache)
    engine = FlowEstimator(base.resolved().flow, FlowCache(out / "engine_flow"))
    embed = MagentaStylizer()
    ghost = make_ghost_clip(out / "ghost_clip", DATA)
    slow = {speed: dataclasses.replace(make_ghost_clip(out / f"ghost_clip_{speed}px", DATA, speed=speed), strip=ghost.strip)
            for speed in SLOW_GHOSTS}  # the strips as wide as at 8 px a frame, so the ratios compare
    rows, input_error, motion, motion_rows = [], {}, {}, []
    for style in styles:
        ref = (parse_style(style),)
        tag = Path(style).stem if not style.startswith("builtin:") else style.replace(":", "")
        gs = dataclasses.replace(base, styles=ref, size=None)
        _, ghost_pf = run(ghost.folder, out / "ghost" / tag / "per_frame", dataclasses.replace(gs, temporal_weight=0.0))
        slow_pf = {v: run(c.folder, out / f"ghost_{v}px" / tag / "per_frame", dataclasses.replace(gs, temporal_weight=0.0))[1]
                   for v, c in slow.items()}
        per_clip = {}
        for name in args.clips.split(","):
            clip = CLIPS[name][0]
            s_pf, pf = run(clip, out / name / tag / "per_frame", dataclasses.replace(base, styles=ref, temporal_weight=0.0))
            per_clip[name] = (s_pf, pf, graded_errors(clip, args.size, pf, grader), np.stack([embed.style_vector(i) for i in pf]))
            if name not in input_error:
                src = open_source(clip, None, args.size)
                input_error[name] = graded_error(clip, args.size, [src.read(k).rgb for k in range(len(src))], grader)
                src.close()
                motion[name] = grader_motion(clip, args.size, len(pf), grader)
        for variant in variants:
            change = VARIANTS[variant]
            _, ghost_fast = run(ghost.folder, out / "ghost" / tag / variant, dataclasses.replace(gs, **change))
            g = ghost_ratio(ghost, ghost_fast, ghost_pf)["ratio"]
            g_slow = {f"ghost {v}px": ghost_ratio(c, run(c.folder, out / f"ghost_{v}px" / tag / variant,
                                                           dataclasses.replace(gs, **change))[1], slow_pf[v])["ratio"]
                      for v, c in slow.items()}
            for name, (s_pf, pf, errs_pf, e_pf) in per_clip.items():
                clip = CLIPS[name][0]
                s_fast, fast = run(clip, out / name / tag / variant, dataclasses.replace(base, styles=ref, **change))
                errs_fast = graded_errors(clip, args.size, fast, grader)
                err_pf, err_fast = float(errs_pf.mean()), float(errs_fast.mean())
                motion_rows += [{"style": tag, "variant": variant, "clip": name, **r}
                                for r in by_motion(motion[name], errs_fast, errs_pf)]
                copied = copied_error(clip, dataclasses.replace(base, **change), fast, pf, grader, engine)
                if variant == "default":
                    contact_sheet(pf, fast, out / f"contact_{name}_{tag}.png")
                t_pf, t_fast = seconds(s_pf, measured=False), seconds(s_fast, measured=True)
                rows.append({
                    "style": tag, "variant": variant, "clip": name, "frames": len(pf),
                    "s/frame per-frame": t_pf, "s/frame fast": t_fast, "time ratio": t_fast / t_pf,
                    "warp err input": input_error[name], "warp err per-frame": err_pf, "warp err fast": err_fast,
                    "warp ratio": err_fast / err_pf, "copy ratio": copied / err_pf,
                    "sharp ratio": float(np.mean([sharpness(i) for i in fast]) / np.mean([sharpness(i) for i in pf])),
                    "drift": style_drift(e_pf, np.stack([embed.style_vector(i) for i in fast])),
                    "ghost ratio": g, **g_slow,
                })
                print(rows[-1], flush=True)
    grader_name = "homography + DeepFlow" if args.grader == "prealigned" else "DeepFlow"
    print(table(rows, f"Fast mode vs per-frame stylization at {args.size} px, graded with {grader_name} (independent "
                      f"of the engine's {base.resolved().flow})"))
    print("bars: time ratio <= 1.3, warp ratio <= 0.4, sharp ratio >= 0.95, drift <= 1.15, ghost ratio <= 2")
    print(table(motion_rows, "Warp ratio by the grader's median motion (frames moving more than 30 px a frame are graded "
                             "by a flow that is wrong by > 3 px on 38 % of the pixels it trusts on Sintel market_5)"))


if __name__ == "__main__":
    main()
