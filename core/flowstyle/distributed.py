"""Scale-out on Ray (issue 7): chunks of the shot as Ray tasks, then the boundary stitch.

Each chunk runs the fast mode on its frames with a lead-in margin (its flow pairs and
per-frame stylizations included) in a Ray worker, writing straight into the shared output
folder; a worker that dies has its chunk retried by Ray (chunks are deterministic and never
read each other's output, so a retry writes the same bytes). When all chunks are in, the
driver re-solves each boundary with the true history (:func:`flowstyle.fast.stitch_boundary`).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

from .chunks import plan_chunks
from .errors import Cancelled, FlowstyleError

__all__ = ["run_distributed"]


def _chunk_task(source, settings, out, chunk, margin, resume, cache_dir, keyframes) -> dict:
    """Body of one Ray task: the engine's own chunk mode in the worker process."""
    import cv2

    from .pipeline import stylize

    cv2.setNumThreads(1)
    report = stylize(source, None, out, settings, chunk=chunk, margin=margin, resume=resume, cache_dir=cache_dir,
                     keyframes=keyframes, _lock=False)
    return {"status": report.status, "frames": report.frames}


def _connect(address: str):
    try:
        import ray
    except ImportError:
        raise FlowstyleError("--ray needs Ray: run 'pip install \"ray==2.60.0\"' in the engine environment") from None
    if not ray.is_initialized():
        try:
            ray.init(address=address or None, include_dashboard=False, log_to_driver=False, configure_logging=False)
        except ConnectionError as exc:
            raise FlowstyleError(f"cannot reach the Ray cluster at '{address}': {exc}; check the address or omit it for a local cluster") from None
    return ray


def run_distributed(ctx, timeline, *, source, keyframes, address: str, chunks: Optional[int], margin: int,
                    cache_dir) -> None:
    """Run the shot as Ray tasks, stream frame events as chunks write, then stitch the boundaries."""
    from .fast import stitch_chunks

    ray = _connect(address)
    gpus = int(ray.cluster_resources().get("GPU", 0)) if ctx.device == "cuda" else 0
    workers = gpus or max(1, int(ray.cluster_resources().get("CPU", 1)))
    plan = plan_chunks(len(ctx.source), chunks or 2 * workers, margin)
    task = ray.remote(num_cpus=1, num_gpus=1 if gpus else 0, max_retries=3)(_chunk_task)
    cache = str(cache_dir or ctx.out / ".flowstyle" / "flow")
    pending = [task.remote(str(source), ctx.settings, str(ctx.out), (c.index, c.count), margin, ctx.resume, cache, keyframes)
               for c in plan]
    keys_dir = ctx.out / ".flowstyle" / "keys"
    seen: set[int] = set()

    def announce() -> None:
        for p in sorted(keys_dir.glob("*.key")):
            index = int(p.stem)
            if index not in seen and (ctx.out / f"frame_{index:05d}.png").is_file():
                seen.add(index)
                ctx.on_event({"event": "frame", "index": index, "path": str(ctx.out / f"frame_{index:05d}.png"), "seconds": 0.0})

    done_chunks = 0
    try:
        while pending:
            if ctx.cancel():
                for ref in pending:
                    ray.cancel(ref, force=True)
                raise Cancelled()
            ready, pending = ray.wait(pending, timeout=0.5)
            for ref in ready:
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    cause = exc.cause if isinstance(getattr(exc, "cause", None), FlowstyleError) else None
                    raise FlowstyleError(str(cause) if cause else f"a chunk failed on the Ray cluster: {exc}") from None
                except ray.exceptions.RayError as exc:
                    raise FlowstyleError(f"a chunk was lost on the Ray cluster after retries: {exc}") from None
                for index, rec in result["frames"].items():
                    ctx.report.frames[int(index)] = rec
                done_chunks += 1
                ctx.progress("chunks", done_chunks, len(plan))
            announce()
    finally:
        announce()
    stitch_chunks(ctx, timeline, plan, margin)
    ctx.report.warnings.append(f"ran as {len(plan)} chunks on Ray ({workers} workers), margin {margin}")
