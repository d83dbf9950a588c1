"""Keyframe-style overrides on the shared clips (issues 5 and 12).

    .venv/bin/python bench/keyframes.py [--size 480] [--part painted|keys|all] [--out bench_out/keyframes]

Painted keys (issue 12). Per clip (and sintel_raft_demo played there and back, 28 frames, for the
offsets its 10 frames cannot reach), the middle frame o is repainted as an artist might (a 4-level
palette, swapped channels, 15 brush strokes; deterministic), and the clip is stylized with and
without that override. At offsets d = 1, 3, 6, 10 from o (both sides, where the clip has them):
- hold: mean |output − painted frame carried there| on a 0-255 scale, carried by DeepFlow from
  frame o±d directly to o (an independent flow: fast mode uses DIS), where that flow passes the
  forward-backward check; bar: <= 22 at d = 10;
- warping error over the clip with DeepFlow (bar: with the override no worse than without);
- sharpness of the frames around o over the painted frame's (bar: >= 0.9);
- seconds per frame with / without the override (bar: <= 2x).
A contact sheet (input, output, every 5th frame) goes to the output folder.

Style keys (issue 5): two keys (A at 1/4 of the clip, linear, B at 3/4): share of frames before
the first key closer (style-predictor embedding) to A than to B, and after the second to B; and
the warping error across the transition, linear dissolve vs hard cut.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np

from _common import CLIPS, REPO, frames_of, require_data, table
from fast_vs_perframe import graded_error
import flowstyle
from flowstyle.base.tensors import to_tensor
from flowstyle.fast.magenta import MagentaStylizer
from flowstyle.io import open_source, read_image, write_png
from flowstyle.io.styles import StyleRef
from flowstyle.motion.flow import FlowEstimator
from flowstyle.motion.masks import consistency_mask
from flowstyle.motion.metrics import sharpness
from flowstyle.motion.warp import warp

A, B = 3, 18
OFFSETS = (1, 3, 6, 10)


def repaint(rgb: np.ndarray, seed: int = 12) -> np.ndarray:
    """An artist's repaint of a frame: 4-level palette, channels swapped, 15 brush strokes. (H, W, 3) float."""
    rng = np.random.default_rng(seed)
    out = (np.floor(rgb[..., [2, 0, 1]] * 3.999) / 3.0).astype(np.float32).copy()
    h, w = out.shape[:2]
    for _ in range(15):
        p0 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        p1 = (int(np.clip(p0[0] + rng.integers(-w // 4, w // 4), 0, w - 1)), int(np.clip(p0[1] + rng.integers(-h // 4, h // 4), 0, h - 1)))
        colour = tuple(float(c) for c in rng.integers(0, 4, 3) / 3.0)
        cv2.line(out, p0, p1, colour, int(rng.integers(max(2, w // 200), max(3, w // 60))), lineType=cv2.LINE_AA)
    return out


def hold_distance(src, outputs: list, painted: np.ndarray, o: int, d: int, grader: FlowEstimator) -> float | None:
    """Mean |output − painted carried to o±d| (0-255) over both sides, where DeepFlow is consistent."""
    key = src.read(o)
    values = []
    for k in (o - d, o + d):
        if not 0 <= k < len(outputs):
            continue
        fw, bw = grader.pair(key, src.read(k))  # o -> k, k -> o
        bw_t = to_tensor(bw)
        mask = consistency_mask(to_tensor(fw), bw_t)
        carried = warp(to_tensor(painted), bw_t)
        diff = (to_tensor(outputs[k]) - carried).abs().mean(1, keepdim=True) * 255
        values.append(float((diff * mask).sum() / mask.sum().clamp(min=1)))
    return float(np.mean(values)) if values else None


def contact_sheet(inputs: list, outputs: list, path: Path, step: int = 5) -> None:
    picks = list(range(0, len(outputs), step))
    rows = [np.concatenate([imgs[i] for i in picks], axis=1) for imgs in (inputs, outputs)]
    sheet = (np.concatenate(rows, axis=0) * 255).astype(np.uint8)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))


def there_and_back(root: Path, frames: int = 28) -> Path:
    """sintel_raft_demo played forward, back and forward again (a folder of links): a longer shot for
    the offsets the 10-frame clip cannot reach, with motion that reverses at the turns."""
    files = sorted(Path(CLIPS["sintel_raft_demo"][0]).glob("frame_*.png"))
    order = files + files[-2::-1] + files[1:]
    folder = root / "raft_there_and_back_frames"
    folder.mkdir(parents=True)
    for i in range(frames):
        os.symlink(order[i % len(order)], folder / f"f_{i + 1:05d}.png")
    return folder


def painted_part(size: int, root: Path) -> list[dict]:
    grader = FlowEstimator("deepflow")
    settings = flowstyle.Settings(size=size, device="cpu")
    rows = []
    clips = {name: clip for name, (clip, _) in CLIPS.items()}
    clips["raft_demo_there_and_back"] = there_and_back(root)
    for name, clip in clips.items():
        d = root / name
        d.mkdir(parents=True)
        src = open_source(clip, max_side=size)
        n, o = len(src), len(src) // 2
        painted = repaint(src.read(o).rgb)
        write_png(d / "painted.png", painted)
        painted = read_image(d / "painted.png")[0]
        (d / "over.json").write_text(json.dumps({"overrides": [{"frame": o + 1, "image": "painted.png"}]}))
        reports, outs = {}, {}
        for run, keys in (("plain", None), ("over", str(d / "over.json"))):
            reports[run] = flowstyle.stylize(clip, f"builtin:{A}", d / run, settings, keyframes=keys).summary()
            outs[run] = frames_of(d / run)
        row = {"clip": name, "frames": n, "key": o + 1}
        for off in OFFSETS:
            for run in ("over", "plain"):
                v = hold_distance(src, outs[run], painted, o, off, grader)
                row[f"{'hold' if run == 'over' else 'no key'} d={off}"] = "-" if v is None else round(v, 1)
        for run in ("over", "plain"):
            row[f"warp {run}"] = graded_error(clip, size, outs[run], grader)
        near = [k for k in range(max(0, o - 10), min(n, o + 11)) if k != o]
        row["sharp / painted"] = float(np.mean([sharpness(outs["over"][k]) for k in near]) / sharpness(painted))
        sec = {run: reports[run]["seconds_per_frame"] for run in reports}
        row["s/frame over"], row["s/frame plain"] = sec["over"], sec["plain"]
        row["time ratio"] = sec["over"] / sec["plain"]
        contact_sheet([src.read(k).rgb for k in range(n)], outs["over"], d / "contact_sheet.png")
        rows.append(row)
        print(f"{name}: done", flush=True)
    return rows


def keys_part(size: int, root: Path) -> list[dict]:
    sa, sb = (MagentaStylizer([StyleRef(builtin=i)]) for i in (A, B))
    settings = flowstyle.Settings(size=size, device="cpu")
    rows = []
    for name, (clip, _) in CLIPS.items():
        d = root / f"keys_{name}"
        src = open_source(clip, max_side=size)
        n = len(src)
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
        rows.append({"clip": name, "frames": n, "keys: frames on the right side": f"{sum(closer)}/{len(closer)}",
                     "warp linear mean": float(errs["linear"].mean()), "warp cut mean": float(errs["constant"].mean()),
                     "warp linear peak": float(errs["linear"].max()), "warp cut peak": float(errs["constant"].max())})
    return rows


def main() -> None:
    require_data()
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=480)
    ap.add_argument("--part", choices=("painted", "keys", "all"), default="all")
    ap.add_argument("--out", default=str(REPO / "bench_out" / "keyframes"))
    args = ap.parse_args()
    root = Path(args.out)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    if args.part in ("painted", "all"):
        print(table(painted_part(args.size, root), f"Painted keys at {args.size} px, fast mode, builtin:{A} "
                                                   "(hold and warp graded with DeepFlow)"))
        print("bars: hold d=10 <= 22; warp over <= warp plain; sharp / painted >= 0.9; time ratio <= 2")
    if args.part in ("keys", "all"):
        print(table(keys_part(args.size, root), f"Style keys at {args.size} px (builtin:{A} -> builtin:{B})"))
        print("bars: frames on the right side of the keys; linear transition below the cut")


if __name__ == "__main__":
    main()
