"""Scale-out on Ray: chunks of the shot as Ray tasks, then the boundary stitch.

Each chunk runs the fast mode on its frames with a lead-in margin (its flow pairs and
per-frame stylizations included) in a Ray worker, writing straight into the shared output
folder; a worker that dies has its chunk retried by Ray (chunks are deterministic and never
read each other's output, so a retry writes the same bytes). When all chunks are in, the
driver re-solves each boundary with the true history (:func:`flowstyle.scale.stitch.stitch_boundary`).

The task body is handed in by the caller (the pipeline's own chunk mode), so this module needs
nothing above it.
"""
from __future__ import annotations

from typing import Callable, Optional

from ..base.errors import Cancelled, FlowstyleError
from ..context import RunContext
from ..io import names
from ..keyframes.timeline import Timeline
from ..settings import RunOptions
from .chunks import plan_chunks
from .stitch import stitch_chunks

__all__ = ["run_distributed", "ChunkJob"]

# chunk_job(source, settings, out, options, keyframes) -> {"status": ..., "frames": {index: record}}
ChunkJob = Callable[..., dict]


def _connect(address: str):
    try:
        import ray  # optional heavy dependency: imported only when --ray is used
    except ImportError:
        raise FlowstyleError("--ray needs Ray: run 'pip install \"ray==2.60.0\"' in the engine environment") from None
    if not ray.is_initialized():
        try:
            ray.init(address=address or None, include_dashboard=False, log_to_driver=False, configure_logging=False)
        except ConnectionError as exc:
            raise FlowstyleError(f"cannot reach the Ray cluster at '{address}': {exc}; check the address or omit it for a local cluster") from None
    return ray


def run_distributed(ctx: RunContext, timeline: Timeline, chunk_job: ChunkJob, *, source, keyframes,
                    options: RunOptions) -> None:
    """Run the shot as Ray tasks of ``chunk_job``, stream frame events as chunks write, then stitch.

    Args:
        chunk_job: runs one chunk in a worker process (a module-level function, so Ray ships it
            by reference).
        options: this run's options; each task gets them with its own ``chunk`` and no lock (the
            driver holds the folder's lock).
    """
    ray = _connect(options.ray)
    gpus = int(ray.cluster_resources().get("GPU", 0)) if ctx.device == "cuda" else 0
    workers = gpus or max(1, int(ray.cluster_resources().get("CPU", 1)))
    plan = plan_chunks(len(ctx.source), options.chunks or 2 * workers, options.margin)
    task = ray.remote(num_cpus=1, num_gpus=1 if gpus else 0, max_retries=3)(chunk_job)
    cache = str(options.cache_dir or names.flow_cache_dir(ctx.out))
    pending = [task.remote(str(source), ctx.settings, str(ctx.out),
                           RunOptions(resume=options.resume, cache_dir=cache, chunk=(c.index, c.count),
                                      margin=options.margin, lock=False), keyframes)
               for c in plan]
    seen: set[int] = set()

    def announce() -> None:
        for p in sorted(names.keys_dir(ctx.out).glob("*.key")):
            index = int(p.stem)
            path = ctx.out / names.frame_name(index)
            if index not in seen and path.is_file():
                seen.add(index)
                ctx.on_event({"event": "frame", "index": index, "path": str(path), "seconds": 0.0})

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
    stitch_chunks(ctx, timeline, plan, options.margin)
    ctx.report.warnings.append(f"ran as {len(plan)} chunks on Ray ({workers} workers), margin {options.margin}")
