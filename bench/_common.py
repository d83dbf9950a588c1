"""Shared bits of the benchmarks: where the data is, and a plain table printer."""
from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FLOWSTYLE_DATA") or REPO / ".." / "shared" / "data").resolve()  # env: a copy elsewhere
CLIPS = {
    "sintel_raft_demo": (DATA / "clips" / "sintel_raft_demo", None),
    "middlebury_rubberwhale": (DATA / "clips" / "middlebury_rubberwhale", None),
    "sintel_cave_2": (DATA / "clips" / "sintel_cave_2" / "sintel_cave_2_clean.mp4", None),
}


def require_data() -> None:
    if not DATA.is_dir():
        sys.exit(f"benchmark data not found at {DATA}: it lives in ../shared/data beside the repository "
                 "(or set FLOWSTYLE_DATA to a copy)")


def table(rows: list[dict], title: str = "") -> str:
    """Format dicts as an aligned text table (columns in first-row order)."""
    if not rows:
        return ""
    cols = list(dict.fromkeys(k for r in rows for k in r))  # every column, in first-seen order
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)
    width = {c: max(len(c), *(len(fmt(r.get(c, ""))) for r in rows)) for c in cols}
    lines = [title] if title else []
    lines.append("  ".join(c.ljust(width[c]) for c in cols))
    lines.append("  ".join("-" * width[c] for c in cols))
    lines += ["  ".join(fmt(r.get(c, "")).ljust(width[c]) for c in cols) for r in rows]
    return "\n".join(lines)


def frames_of(folder) -> list:
    """The output frames of a run, in order, as (H, W, 3) float arrays."""
    from flowstyle.io import read_image

    return [read_image(p)[0] for p in sorted(Path(folder).glob("frame_*.png"))]


def dis_fast_with(spec: str):
    """A flow backend builder like the engine's ``dis-fast`` with other DIS settings, for experiments: ``spec`` =
    "REFINE,SCALE,DESCENT" or "REFINE:SCALE:DESCENT" (variational refinement iterations, finest scale, gradient
    descent iterations; OpenCV's FAST preset is "5,2,16"). Put it in ``flowstyle.motion.flow.FLOW_BACKENDS``
    to have the engine's runs use it; the engine itself is unchanged."""
    import cv2

    from flowstyle.base.recent import Recent
    from flowstyle.motion.flow import _gray8

    refine, scale, descent = (int(v) for v in spec.replace(":", ",").split(","))

    def build():
        dis, gray = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST), Recent(_gray8)
        dis.setVariationalRefinementIterations(refine)
        dis.setFinestScale(scale)
        dis.setGradientDescentIterations(descent)
        return lambda a, b: dis.calc(gray(a), gray(b), None)

    return build
