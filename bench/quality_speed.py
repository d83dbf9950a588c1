"""Quality mode: total loss against seconds for the default recipe and faster ones (issue 16, item 3).

    .venv/bin/python bench/quality_speed.py [--size 512] [--device cpu] [--recipes default,fast,default/5]
        [--later] [--out bench_out/quality_speed]

One frame (sintel_raft_demo, frame 1, starry_night), a seeded random-init VGG-19 (the objective is
the objective, trained weights or not), the loss on artistic-videos' scales with content and
style lifted 1000x as the tests do for the random net. Recipes, each against the same full-size
objective of a fresh frame (the first frame of a shot):

- default      the engine's default: L-BFGS from the content frame, 1000 iterations (--iterations-first),
               stopping early when the loss falls by less than 0.01 % over 50 iterations
- fast         the engine's --recipe fast: coarse-to-fine over 2 coarser levels, 70 iterations at full size
               (175 and 437 at the half and quarter sizes)
- default/5    the default cut to a fifth of its iterations (what simply stopping earlier gives)
- c2f          coarse-to-fine with the default's budget at full size (not in the default set)
- wolfe        L-BFGS with a strong-Wolfe line search, 1/5 of the iterations (not in the default set)
- fast-start   start from fast mode's result, 1/5 of the iterations (not in the default set)
- bf16         the default under CPU autocast(bfloat16), where amp_agrees says the loss agrees (not in the
               default set: slower than float32 on CPUs without AMX)

--later also runs frames 1-2 through the engine with each recipe's budget for later frames (500 and 50
iterations from the warped previous result, with the temporal term), frame 1 the same for both, and
prints frame 2's final loss and seconds from the reports.

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
from flowstyle.settings import RECIPES

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


def later_frame(size: int, device: str, tmp: Path) -> list[dict]:
    """Frames 1-2 through the engine: frame 1 by the fast recipe in both runs, frame 2 by each recipe's
    budget for later frames; frame 2's final loss and seconds from the reports."""
    rows = []
    for recipe in ("default", "fast"):
        out = tmp / f"later_{recipe}"
        s = flowstyle.Settings(mode="quality", size=size, frames=(1, 2), device=device, recipe=recipe,
                               iterations_first=RECIPES["fast"]["iterations_first"],
                               coarse_to_fine=RECIPES["fast"]["coarse_to_fine"],
                               vgg_weights=str(tmp / "vgg.pth"), **RANDOM_NET)
        flowstyle.stylize(CLIP, str(STYLE), out, s)
        frame2 = json.loads((out / "report.json").read_text())["frames"]["2"]
        rows.append({"recipe": recipe, "seconds": frame2["stylize"], "loss": frame2["loss"]["total"],
                     "iterations": frame2["loss"]["iterations"]})
    for r in rows:
        r["loss_vs_default"], r["time_vs_default"] = r["loss"] / rows[0]["loss"], r["seconds"] / rows[0]["seconds"]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--recipes", default="default,fast,default/5",
                    help="comma-separated, from default,fast,default/5,c2f,wolfe,fast-start,bf16 (default first)")
    ap.add_argument("--iters", type=int, default=RECIPES["default"]["iterations_first"],
                    help="the default's budget (the engine's --iterations-first)")
    ap.add_argument("--later", action="store_true", help="also compare a later frame's budgets through the engine")
    ap.add_argument("--later-only", action="store_true", help="only the later frame (no single-frame recipes)")
    ap.add_argument("--out", type=Path, default=REPO / "bench_out" / "quality_speed")
    a = ap.parse_args()
    require_data()
    wanted = a.recipes.split(",")
    if wanted[0] != "default":
        raise SystemExit("--recipes must start with default (the reference)")
    a.out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="qspeed"))
    if a.later_only:
        random_vgg(tmp / "vgg.pth")
        print(table(later_frame(a.size, a.device, tmp),
                    f"a later frame (frame 2, temporal term, from the warped frame 1) at {a.size} px"))
        return
    s, content, stylist = one_frame(a.size, a.device, tmp)
    full = stylist.objective(content, s.styles)
    build = lambda sc: stylist.objective(content, s.styles, None, sc)
    n, fast = a.iters, RECIPES["fast"]
    print(f"{a.size} px ({tuple(content.shape[-2:])}), {a.device}, {torch.get_num_threads()} threads, "
          f"default budget {n} iterations", flush=True)

    def plain(init, iters, opt="lbfgs", objective=None):
        return lambda cb: optimize(objective or full, init, iterations=iters, optimizer=opt, callback=cb)

    def c2f(init, iters, levels, opt="lbfgs"):
        return lambda cb: coarse_to_fine(build, init, iterations=iters, levels=levels, optimizer=opt,
                                         callback=lambda it, loss: cb(it, loss, scale=0.5))  # no full-size points

    recipes = {
        "default": lambda: plain(content, n),
        "fast": lambda: c2f(content, fast["iterations_first"], fast["coarse_to_fine"]),
        "default/5": lambda: plain(content, max(1, n // 5)),
        "c2f": lambda: c2f(content, n, 2),
        "wolfe": lambda: plain(content, max(1, n // 5), "lbfgs-wolfe"),
    }
    rows = []
    for name in wanted:
        if name in recipes:
            rows.append(trace_run(name, full, recipes[name]()))
        elif name == "fast-start":
            try:
                start, fast_s = fast_start(a.size, tmp)
                rows.append(trace_run(name, full, plain(start.to(a.device), max(1, n // 5)), t0_extra=fast_s))
            except flowstyle.FlowstyleError as e:
                print(f"fast-start skipped: {e}")
        elif name == "bf16":
            if amp_agrees(full, content, torch.bfloat16, rtol=1e-2):
                bf = stylist.objective(content, s.styles)
                bf.amp_dtype = torch.bfloat16
                rows.append(trace_run(name, full, plain(content, n, objective=bf)))
            else:
                print("bf16: the loss under autocast disagrees with float32 by more than 1 %: not run")
        else:
            raise SystemExit(f"unknown recipe {name!r}")
        print(table([{k: v for k, v in rows[-1].items() if k != "points"}]), flush=True)
    ref = rows[0]
    for r in rows:
        r["loss_vs_default"] = r["loss"] / ref["loss"]
        r["time_vs_default"] = r["seconds"] / ref["seconds"]
        r["meets_bar"] = ("reference" if r is ref else
                          r["loss"] <= 1.01 * ref["loss"] and r["seconds"] <= ref["seconds"] / 5)
    print(table([{k: v for k, v in r.items() if k != "points"} for r in rows],
                f"quality speed at {a.size} px on {a.device} (bar: loss <= 1.01x default in <= 1/5 of its time)"))
    later = later_frame(a.size, a.device, tmp) if a.later else []
    if later:
        print(table(later, f"a later frame (frame 2, temporal term, from the warped frame 1) at {a.size} px"))
    (a.out / "quality_speed.json").write_text(json.dumps({"size": a.size, "device": a.device, "rows": rows,
                                                          "later": later}, indent=1))
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
