"""Fast mode's time per frame against per-frame stylization, alternated so load hits both alike.

    .venv/bin/python bench/fast_timing.py [--size 1024] [--style builtin:7] [--repeat 2] [--device cpu] [--try g0:gradient_weight=0.0]

Per-frame stylization counts decode + network + write; fast mode counts everything the user waits
for (flow, masks, solve, the report's own measurement). Best of ``--repeat`` runs of each, run in
turns. Also printed: the milliseconds fast mode adds to a frame, its own cost, which a faster or slower
network (or decode and write, shared by both) does not change. Bar (issue 13): fast <= 1.3x per-frame.
Not in the ratio, printed beside it: report.png's seconds, drawn once after the last frame (matplotlib),
whatever the clip's length; every run draws it, per-frame ones too, unless ``--no-report-image``.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import shutil
import tempfile
from pathlib import Path

from _common import CLIPS, require_data, table
import flowstyle


def main() -> None:
    require_data()
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--style", default="builtin:7")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--clips", default="sintel_raft_demo,middlebury_rubberwhale")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or mps (both modes run there)")
    ap.add_argument("--try", dest="extra", action="append", default=[], metavar="NAME:FIELD=VALUE,...")
    args = ap.parse_args()
    base = flowstyle.Settings(size=args.size, device=args.device)
    variants = {"default": {}}
    for spec in args.extra:
        name, _, fields = spec.partition(":")
        variants[name] = {k: ast.literal_eval(v) for k, v in (f.split("=", 1) for f in fields.split(",") if f)}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.clips.split(","):
            clip = CLIPS[name][0]
            times: dict = {"per-frame": []} | {v: [] for v in variants}
            drawn: dict = {v: [] for v in variants}  # report.png's seconds, once a run, after the frames
            for rep in range(args.repeat):
                for kind, change in [("per-frame", {"temporal_weight": 0.0})] + list(variants.items()):
                    out = Path(tmp) / f"{name}_{kind}"
                    shutil.rmtree(out, ignore_errors=True)
                    s = flowstyle.stylize(clip, args.style, out, dataclasses.replace(base, **change),
                                          cache_dir=Path(tmp) / f"cache_{rep}_{kind}").summary()
                    waited = s["seconds_per_frame"] + (0.0 if kind == "per-frame" else s["measure_seconds_per_frame"])
                    times[kind].append(waited)
                    if kind in drawn:
                        drawn[kind].append(s["extra_seconds"].get("report_image", 0.0))
            pf = min(times["per-frame"])
            for v in variants:
                rows.append({"clip": name, "variant": v, "s/frame per-frame": pf, "s/frame fast": min(times[v]),
                             "ms/frame added": 1000 * (min(times[v]) - pf), "time ratio": min(times[v]) / pf,
                             "report.png s/run": min(drawn[v])})
    print(table(rows, f"Fast mode time per frame at {args.size} px, {args.style}, {args.device}, best of {args.repeat}"))
    print("bar: time ratio <= 1.3")


if __name__ == "__main__":
    main()
