"""Quality mode: total loss against seconds for the default recipe and faster ones (issue 16, item 3).

    .venv/bin/python bench/quality_speed.py [--size 512] [--iters 200] [--device cpu]
        [--out bench_out/quality_speed]

One frame (sintel_raft_demo, frame 1, starry_night), a seeded random-init VGG-19 (the objective is
the objective, trained weights or not), the loss on artistic-videos' scales with content and
style lifted 1000x as the tests do for the random net. Recipes, each against the same full-size
objective:

- default      L-BFGS from the content frame, --iters iterations (the engine's default start)
- c2f          coarse-to-fine: two coarser levels first (half the budget each), then full size
- fast-start   start from fast mode's result (the shipped arbitrary-style network), --iters / 5
- wolfe        L-BFGS with a strong-Wolfe line search, --iters / 5 iterations
- wolfe+c2f    both
- bf16         the default under CPU autocast(bfloat16), only where amp_agrees says the loss agrees

Bar: a recipe whose final loss is within 1 % of the default's in at most 1/5 of its time.
Writes OUT/quality_speed.png (loss vs seconds) and OUT/quality_speed.json.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _common import DATA, REPO, require_data, table
import flowstyle
from flowstyle.base.tensors import to_tensor
from flowstyle.io import open_source, read_image
from flowstyle.quality import run as quality
from flowstyle.quality.optimize import amp_agrees, coarse_to_fine, optimize

CLIP, STYLE = DATA / "clips" / "sintel_raft_demo", DATA / "styles" / "starry_night.jpg"
RANDOM_NET = dict(content_weight=5e3, style_weight=1e5, sharpness_weight=0.0)  # as tests/test_quality.py


def random_vgg(path: Path) -> Path:
    import torchvision

    torch.manual_seed(0)
    sd = torchvision.models.vgg19().state_dict()
    torch.save({k: v for k, v in sd.items() if k.startswith("features.") and int(k.split(".")[1]) <= 28}, path)
    return path


def one_frame(size: int, device: str, tmp: Path) -> tuple:
    """(settings, frame 1 as (1, 3, H, W) on ``device``, the engine's Stylist) on the random net."""
    s = flowstyle.Settings(mode="quality", styles=(flowstyle.StyleRef(image=str(STYLE)),), size=size,
                           vgg_weights=str(random_vgg(tmp / "vgg.pth")), device=device, **RANDOM_NET).resolved()
    src = open_source(CLIP, frames=(1, 1), max_side=size)
    content = to_tensor(src.read(0).rgb, device)
    src.close()
    return s, content, quality.Stylist(s, device)  # the Stylist goes channels-last on CUDA


def fast_start(size: int, tmp: Path) -> tuple[torch.Tensor, float]:
    """Fast mode's stylization of frame 1 (its arbitrary-style network) and the seconds it took."""
    t = time.perf_counter()
    flowstyle.stylize(CLIP, str(STYLE), tmp / "fast", flowstyle.Settings(mode="fast", size=size, frames=(1, 1), device="cpu"))
    img = to_tensor(read_image(tmp / "fast" / "frame_00001.png")[0])
    return img, time.perf_counter() - t


def trace_run(name: str, full, run, t0_extra: float = 0.0) -> dict:
    """Run ``run(callback)`` and record (seconds, full-size loss) every 10 iterations at full size."""
    points: list = []
    t0 = time.perf_counter()

    def cb(it, loss, *, scale=1.0):
        if scale == 1.0:
            points.append((time.perf_counter() - t0 + t0_extra, loss))

    res = run(cb)
    seconds = time.perf_counter() - t0 + t0_extra
    with torch.no_grad():
        final = float(full(full.to_variable(res.image))[0])
    points.append((seconds, final))
    return {"recipe": name, "seconds": seconds, "loss": final, "iterations": len(res.losses), "points": points}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=REPO / "bench_out" / "quality_speed")
    a = ap.parse_args()
    require_data()
    a.out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="qspeed"))
    s, content, stylist = one_frame(a.size, a.device, tmp)
    full = stylist.objective(content, s.styles)
    build = lambda sc: stylist.objective(content, s.styles, None, sc)
    n = a.iters
    print(f"{a.size} px ({tuple(content.shape[-2:])}), {a.device}, default budget {n} iterations", flush=True)

    def plain(init, iters, opt="lbfgs", objective=None):
        return lambda cb: optimize(objective or full, init, iterations=iters, optimizer=opt, callback=cb)

    def c2f(init, iters, opt="lbfgs"):
        def run(cb):
            return coarse_to_fine(build, init, iterations=iters, levels=2, optimizer=opt,
                                  callback=lambda it, loss: None)
        return run

    rows = [trace_run("default", full, plain(content, n))]
    print(table([{k: v for k, v in rows[-1].items() if k != "points"}]), flush=True)
    rows.append(trace_run("c2f", full, c2f(content, n)))
    rows.append(trace_run("wolfe", full, plain(content, max(1, n // 5), "lbfgs-wolfe")))
    rows.append(trace_run("wolfe+c2f", full, c2f(content, max(1, n // 5), "lbfgs-wolfe")))
    try:
        start, fast_s = fast_start(a.size, tmp)
        rows.append(trace_run("fast-start", full, plain(start.to(a.device), max(1, n // 5)), t0_extra=fast_s))
        rows.append(trace_run("fast-start+wolfe", full, plain(start.to(a.device), max(1, n // 5), "lbfgs-wolfe"),
                              t0_extra=fast_s))
    except flowstyle.FlowstyleError as e:
        print(f"fast-start skipped: {e}")
    amp = torch.bfloat16
    if amp_agrees(full, content, amp, rtol=1e-2):
        bf = stylist.objective(content, s.styles)
        bf.amp_dtype = amp
        rows.append(trace_run("bf16", full, plain(content, n, objective=bf)))
    else:
        print("bf16: the loss under autocast disagrees with float32 by more than 1 %: not run")
    ref = rows[0]
    for r in rows:
        r["loss_vs_default"] = r["loss"] / ref["loss"]
        r["time_vs_default"] = r["seconds"] / ref["seconds"]
        r["meets_bar"] = r["loss"] <= 1.01 * ref["loss"] and r["seconds"] <= ref["seconds"] / 5
    print(table([{k: v for k, v in r.items() if k != "points"} for r in rows],
                f"quality speed at {a.size} px on {a.device} (bar: loss <= 1.01x default in <= 1/5 of its time)"))
    (a.out / "quality_speed.json").write_text(json.dumps({"size": a.size, "device": a.device, "rows": rows}, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        t, l = zip(*r["points"])
        ax.plot(t, l, marker=".", label=f"{r['recipe']} ({r['seconds']:.0f} s)")
    ax.axhline(1.01 * ref["loss"], color="gray", ls="--", lw=0.8, label="default final + 1 %")
    ax.axvline(ref["seconds"] / 5, color="gray", ls=":", lw=0.8, label="1/5 of default's time")
    ax.set(xlabel="seconds", ylabel="total loss (full size)", yscale="log",
           title=f"quality mode, one frame at {a.size} px, {a.device}, random VGG-19")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(a.out / "quality_speed.png", dpi=110)
    print(f"wrote {a.out / 'quality_speed.png'}")


if __name__ == "__main__":
    main()
