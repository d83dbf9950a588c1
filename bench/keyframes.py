"""Keyframe-style overrides on the shared clips (issues 5 and 12).

    .venv/bin/python bench/keyframes.py [--size 480] [--part painted|keys|all] [--out bench_out/keyframes]

Painted keys (issue 12). Per clip (sintel_raft_demo also played there and back, 28 frames, and a
calm 31-frame shot with exact motion: a camera panning and zooming over a Sintel still, for the
offsets the short clips cannot reach), the middle frame o is repainted as an artist might (a 4-level
palette, swapped channels, 15 brush strokes; deterministic), and the clip is stylized with and
without that override. At offsets d = 1, 3, 6, 10 from o (both sides, where the clip has them):
- hold: mean |output − painted frame carried there| on a 0-255 scale. On the real clips it is
  carried by an independent grader (grade_flow.py: SIFT homography + OpenCV DeepFlow, straight from
  frame o±d to o; fast mode uses DIS) and graded where that flow passes the forward-backward check
  and carries the input to the same colour; "cover" is the share of pixels graded. On the still
  shot it is carried by the exact motion. Bar: <= 22 at d = 10;
- warping error over the clip with the grader's flow (bar: with the override no worse than without);
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
import torch

from _common import CLIPS, DATA, REPO, frames_of, require_data, table
from fast_vs_perframe import graded_error
from grade_flow import PrealignedDeepFlow, trusted
import flowstyle
from flowstyle.base.tensors import to_tensor
from flowstyle.fast.magenta import MagentaStylizer
from flowstyle.io import open_source, read_image, write_png
from flowstyle.io.styles import StyleRef
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


def hold_distance(outputs: list, painted: np.ndarray, o: int, d: int, carry) -> tuple[float, float] | None:
    """Mean |output − painted carried to o±d| (0-255) over both sides where the grade may look, and the
    share of pixels it looked at. ``carry(k)`` gives the flow k -> o and that mask."""
    values, cover = [], []
    for k in (o - d, o + d):
        if not 0 <= k < len(outputs):
            continue
        flow, mask = carry(k)
        carried = warp(to_tensor(painted), flow)
        diff = (to_tensor(outputs[k]) - carried).abs().mean(1, keepdim=True) * 255
        values.append(float((diff * mask).sum() / mask.sum().clamp(min=1)))
        cover.append(float(mask.mean()))
    return (float(np.mean(values)), float(np.mean(cover))) if values else None


def graded_carry(src, o: int, grader: PrealignedDeepFlow):
    """``carry`` for a real clip: the independent grader's flow from frame k straight to the key o."""
    key = src.read(o)

    def carry(k: int):
        frame = src.read(k)
        to_key, from_key = grader.pair(frame, key)
        return to_tensor(to_key), trusted(frame, key, to_key, from_key)
    return carry


def still_shot(root: Path, frames: int = 31, size: int = 480):
    """A calm shot with exact motion: a camera window panning (4 px a frame) and slowly zooming in
    (0.4 % a frame) over a Sintel still (sintel-alley_1, 1024x436). Returns the frame folder and
    ``carry`` with the exact flow k -> key and the mask of pixels still inside the key's frame."""
    still = read_image(DATA / "flow" / "sintel-alley_1" / "final" / "frame_0002.png")[0]
    w, h = size, int(round(size * 0.5))
    zoom = [0.7 * 0.996 ** t for t in range(frames)]          # still pixels per output pixel / 1.5
    centre = [(still.shape[1] / 2 + 4 * 1.5 * 0.7 * (t - frames // 2), still.shape[0] / 2) for t in range(frames)]
    folder = root / "still_shot_frames"
    folder.mkdir(parents=True)

    def to_still(t, x, y):
        s = 1.5 * zoom[t]
        return centre[t][0] + s * (x - w / 2), centre[t][1] + s * (y - h / 2)

    for t in range(frames):
        s = 1.5 * zoom[t]
        m = np.float32([[s, 0, centre[t][0] - s * w / 2], [0, s, centre[t][1] - s * h / 2]])
        frame = cv2.warpAffine(still, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        write_png(folder / f"f_{t + 1:05d}.png", frame)

    def carry_to(o: int):
        def carry(k: int):
            ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
            sx, sy = to_still(k, xs, ys)
            s = 1.5 * zoom[o]
            ox, oy = (sx - centre[o][0]) / s + w / 2, (sy - centre[o][1]) / s + h / 2
            flow = np.stack([ox - xs, oy - ys], -1).astype(np.float32)
            inside = (ox >= 0) & (ox <= w - 1) & (oy >= 0) & (oy <= h - 1)
            return to_tensor(flow), torch.from_numpy(inside.astype(np.float32))[None, None]
        return carry
    return folder, carry_to


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
    grader = PrealignedDeepFlow()
    settings = flowstyle.Settings(size=size, device="cpu")
    rows = []
    clips = {name: (clip, None) for name, (clip, _) in CLIPS.items()}
    clips["raft_demo_there_and_back"] = (there_and_back(root), None)
    still, exact = still_shot(root)
    clips["still_shot (exact flow)"] = (still, exact)
    for name, (clip, exact_carry) in clips.items():
        d = root / name.split()[0]
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
        carry = exact_carry(o) if exact_carry else graded_carry(src, o, grader)
        row = {"clip": name, "frames": n, "key": o + 1}
        for off in OFFSETS:
            for run in ("over", "plain"):
                v = hold_distance(outs[run], painted, o, off, carry)
                row[f"{'hold' if run == 'over' else 'no key'} d={off}"] = "-" if v is None else round(v[0], 1)
                if run == "over":
                    row[f"cover d={off}"] = "-" if v is None else round(v[1], 2)
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
                                                   "(hold and warp graded by homography + DeepFlow; still shot: exact)"))
        print("bars: hold d=10 <= 22; warp over <= warp plain; sharp / painted >= 0.9; time ratio <= 2")
    if args.part in ("keys", "all"):
        print(table(keys_part(args.size, root), f"Style keys at {args.size} px (builtin:{A} -> builtin:{B})"))
        print("bars: frames on the right side of the keys; linear transition below the cut")


if __name__ == "__main__":
    main()
