"""The stylizer networks: the old ONNX path against the torch port, per painting and built-in style (issue 11).

    .venv/bin/python bench/stylizers.py [--size 1024] [--frames 3] [--builtins 0,7,13,19] [--paintings all]
        [--stroke-scale 1] [--out bench_out/stylizers]

Per shared painting and per built-in style, at --size on the shared clips (--frames frames from each,
spread over the clip), old and new stylized in turn on the same frame:
- seconds per frame: old (onnxruntime, on as many threads as torch; paintings at the fixed 384x384
  and upscaled) and torch on the CPU at the working size (the default --precision auto: on a CPU with
  native bfloat16 the arbitrary network's 3x3 convs in bfloat16; float32 throughout; and with the
  int8 file's rounding emulated), and on CUDA (half precision) where a GPU is visible;
- crop style distance: the mean distance of the Magenta style embeddings of 256-px crops of the output
  from the painting's embedding (lower: closer to the painting; the torch predictor in float is the
  yardstick for every column);
- sharpness: mean gradient magnitude of the output.
Bars: crop style distance no worse than the old path; CPU time no worse than 1.2x the old path.
Writes a contact sheet per painting: the old path, the torch port as run by default and with the
int8 rounding emulated, one column per clip.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from _common import CLIPS, DATA, REPO, require_data, table
from onnx_reference import OnnxStylizer
from flowstyle.fast.magenta import MagentaStylizer
from flowstyle.io import open_source, read_image
from flowstyle.io.styles import StyleRef
from flowstyle.motion.metrics import sharpness

CROP = 256


def crop_distance(embed: MagentaStylizer, rgb: np.ndarray, target: np.ndarray) -> float:
    """Mean distance of the style embeddings of non-overlapping 256-px crops of ``rgb`` from ``target``."""
    h, w = rgb.shape[:2]
    crops = [rgb[y:y + CROP, x:x + CROP] for y in range(0, h - CROP + 1, CROP) for x in range(0, w - CROP + 1, CROP)]
    crops = crops or [cv2.resize(rgb, (CROP, CROP), interpolation=cv2.INTER_AREA)]
    return float(np.mean([np.linalg.norm(embed.style_vector(c) - target) for c in crops]))


def clip_frames(size: int, count: int) -> dict[str, list[np.ndarray]]:
    out = {}
    for name, (path, _) in CLIPS.items():
        src = open_source(path, max_side=size)
        picks = np.linspace(0, len(src) - 1, count).round().astype(int)
        out[name] = [src.read(int(k)).rgb for k in picks]
    return out


def timed(fn, rgb):
    t = time.perf_counter()
    out = fn(rgb)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - t


def label(img: np.ndarray, text: str) -> np.ndarray:
    img = (np.clip(img, 0, 1) * 255).astype(np.uint8).copy()
    for color, thick in (((255, 255, 255), 3), ((0, 0, 0), 1)):
        cv2.putText(img, text, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, color, thick)
    return img


def fit_height(img: np.ndarray, h: int) -> np.ndarray:
    return img if img.shape[0] == h else cv2.resize(img, (round(img.shape[1] * h / img.shape[0]), h))


def main() -> None:
    require_data()
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--frames", type=int, default=3, help="frames per clip")
    ap.add_argument("--builtins", default="0,7,13,19", help="built-in styles to time, or 'all'")
    ap.add_argument("--out", default=str(REPO / "bench_out" / "stylizers"))
    ap.add_argument("--stroke-scale", type=float, default=1.0, help="the torch path's --stroke-scale")
    ap.add_argument("--paintings", default="all", help="comma-separated painting stems, or 'all'")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    frames = clip_frames(args.size, args.frames)
    embed = MagentaStylizer()
    cuda = torch.cuda.is_available()
    builtins = range(26) if args.builtins == "all" else [int(b) for b in args.builtins.split(",") if b]
    paintings = sorted(p for p in (DATA / "styles").glob("*.jpg")
                       if args.paintings == "all" or p.stem in args.paintings.split(","))
    rows = []
    for style in [StyleRef(image=str(p)) for p in paintings] + [StyleRef(builtin=b) for b in builtins]:
        name = Path(style.image).stem if style.image else f"builtin:{style.builtin}"
        runs = {"old": OnnxStylizer(style), "torch": MagentaStylizer([style], stroke_scale=args.stroke_scale),
                "float32": MagentaStylizer([style], stroke_scale=args.stroke_scale, precision="float"),
                "int8": MagentaStylizer([style], quantized=True)}
        if cuda:
            runs["cuda"] = MagentaStylizer([style], device="cuda")
        target = embed.style_vector(read_image(style.image)[0]) if style.image else None
        secs = {k: [] for k in runs}
        dist = {k: [] for k in runs}
        sharp = {k: [] for k in runs}
        sheet_cols = []
        for clip, rgbs in frames.items():
            for i, rgb in enumerate(rgbs):
                outs = {}
                order = list(runs)
                turn = len(secs["old"]) % len(order)
                for k in order[turn:] + order[:turn]:  # interleaved, in turns: each sees the same load
                    fn = runs[k]
                    fn(rgb) if not secs[k] else None  # warm up once per stylizer
                    outs[k], s = timed(fn, rgb)
                    secs[k].append(s)
                    sharp[k].append(sharpness(outs[k]))
                    if target is not None and k != "cuda":
                        dist[k].append(crop_distance(embed, outs[k], target))
                if i == len(rgbs) // 2 and style.image:
                    h = rgbs[0].shape[0]
                    sheet_cols.append(np.concatenate([
                        fit_height(label(outs["old"], f"old ONNX 384px, {clip}"), h),
                        fit_height(label(outs["torch"], f"torch (default), {clip}"), h),
                        fit_height(label(outs["int8"], f"torch int8 emulated, {clip}"), h)], axis=0))
        row = {"style": name,
               "old s/f": float(np.median(secs["old"])), "torch s/f": float(np.median(secs["torch"])),
               "ratio": float(np.median(secs["torch"]) / np.median(secs["old"])),
               "float32 s/f": float(np.median(secs["float32"])), "int8-emul s/f": float(np.median(secs["int8"]))}
        if cuda:
            row["cuda s/f"] = float(np.median(secs["cuda"]))
        if target is not None:
            row |= {"dist old": float(np.mean(dist["old"])), "dist torch": float(np.mean(dist["torch"])),
                    "dist int8": float(np.mean(dist["int8"]))}
        row |= {"sharp old": float(np.mean(sharp["old"])), "sharp torch": float(np.mean(sharp["torch"])),
                "sharp int8": float(np.mean(sharp["int8"]))}
        rows.append(row)
        print(table([row]), flush=True)
        if sheet_cols:
            h = max(c.shape[0] for c in sheet_cols)
            sheet = np.concatenate([fit_height(c, h) for c in sheet_cols], axis=1)
            cv2.imwrite(str(out / f"sheet_{name}.jpg"), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    print()
    print(table(rows, f"stylizers at --size {args.size}, {args.frames} frames per clip ({', '.join(frames)}), "
                      f"CPU threads {torch.get_num_threads()}{', CUDA ' + torch.cuda.get_device_name() if cuda else ''}"))
    paint = [r for r in rows if "dist old" in r]
    if paint:
        print(f"bars: crop style distance torch <= old for {sum(r['dist torch'] <= r['dist old'] for r in paint)}"
              f"/{len(paint)} paintings; CPU time <= 1.2x old for {sum(r['ratio'] <= 1.2 for r in rows)}/{len(rows)} styles")
    print(f"contact sheets in {out}")


if __name__ == "__main__":
    main()
