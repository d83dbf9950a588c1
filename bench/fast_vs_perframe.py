"""Fast mode against plain per-frame stylization, side by side in one process (issue 2, DESIGN 7).

    .venv/bin/python bench/fast_vs_perframe.py [--size 1024] [--style builtin:7] [--out bench_out]

Per clip: seconds per frame of each (stylize + flow + temporal + decode + write; the report's
measuring step excluded) and their ratio; warping error of each (engine flow, Lai et al.) and
their ratio; mean gradient magnitude (sharpness) ratio; style drift of the fast mode (DESIGN 7).
Bars: warping error <= 0.5x, sharpness >= 0.9x, drift <= 1.25, time <= 1.5x.
Also writes a labelled contact sheet per clip (start / middle / end; per-frame above, fast mode below).
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import dataclasses

import cv2
import numpy as np

from _common import CLIPS, REPO, frames_of, require_data, table
import flowstyle
from flowstyle.motion.metrics import sharpness, style_drift
from flowstyle.fast.magenta import MagentaStylizer
from flowstyle.io.styles import parse_style


def run(clip: Path, out: Path, settings: flowstyle.Settings) -> tuple[dict, list[np.ndarray]]:
    shutil.rmtree(out, ignore_errors=True)
    report = flowstyle.stylize(clip, None, out, settings)
    return report.summary(), frames_of(out)


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
    sheet = np.concatenate(rows, axis=0)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))


def main() -> None:
    require_data()
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--style", default="builtin:7")
    ap.add_argument("--solver", default="band", choices=("band", "cg"))
    ap.add_argument("--out", default=str(REPO / "bench_out"))
    args = ap.parse_args()
    out = Path(args.out)
    base = flowstyle.Settings(size=args.size, solver=args.solver, device="cpu")
    embed = MagentaStylizer()
    rows = []
    for name, (clip, _) in CLIPS.items():
        styles = (parse_style(args.style),)
        s_pf, pf = run(clip, out / name / "per_frame", dataclasses.replace(base, styles=styles, temporal_weight=0.0))
        s_fast, fast = run(clip, out / name / "fast", dataclasses.replace(base, styles=styles))
        e_pf = np.stack([embed.style_vector(i) for i in pf])
        e_fast = np.stack([embed.style_vector(i) for i in fast])
        sheet = out / f"contact_{name}.png"
        contact_sheet(pf, fast, sheet)
        rows.append({
            "clip": name, "frames": len(pf),
            "s/frame per-frame": s_pf["seconds_per_frame"], "s/frame fast": s_fast["seconds_per_frame"],
            "time ratio": s_fast["seconds_per_frame"] / s_pf["seconds_per_frame"],
            "warp err per-frame": s_pf["warping_error_mean"], "warp err fast": s_fast["warping_error_mean"],
            "warp ratio": s_fast["warping_error_mean"] / s_pf["warping_error_mean"],
            "sharp ratio": float(np.mean([sharpness(i) for i in fast]) / np.mean([sharpness(i) for i in pf])),
            "drift": style_drift(e_pf, e_fast),
        })
        print(f"{name}: contact sheet {sheet}", flush=True)
    print(table(rows, f"Fast mode vs per-frame stylization at {args.size} px, style {args.style}, solver {args.solver}"))
    print("bars: time ratio <= 1.5, warp ratio <= 0.5, sharp ratio >= 0.9, drift <= 1.25")


if __name__ == "__main__":
    main()
