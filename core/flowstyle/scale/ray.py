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

import importlib.util
import os
from pathlib import Path
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


RAY_PIN = "ray[client]==2.60.0"


def _token_available() -> bool:
    """Whether a Ray auth token is where Ray looks for one (env var, env path, ~/.ray/auth_token)."""
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")
    return bool(os.environ.get("RAY_AUTH_TOKEN")) or Path(path).is_file()


def _connect(address: str):
    """Ray, connected to the cluster at ``address`` (a new local one when empty).

    The documented ways in work as documented: ``ray://HOST:10001`` needs Ray's client (grpc), said
    in one line when missing; a cluster from ``ray start --head`` (Ray 2.60 turns token
    authentication on) is reached with the token ``ray start`` saved, by switching the driver to
    token mode (``RAY_AUTH_MODE=token``) when the user has not chosen a mode and a token is there.
    """
    if address and "RAY_AUTH_MODE" not in os.environ and _token_available():
        # before Ray is imported: it reads its auth mode once, at import (set later, the driver connects
        # without the token and the cluster refuses it); its workers inherit it
        os.environ["RAY_AUTH_MODE"] = "token"
    try:
        import ray  # optional heavy dependency: imported only when --ray is used
    except ImportError:
        raise FlowstyleError(f"--ray needs Ray: run 'pip install \"{RAY_PIN}\"' in the engine environment") from None
    if address.startswith("ray://") and importlib.util.find_spec("grpc") is None:
        raise FlowstyleError(f"--ray {address} needs Ray's client (grpcio): run 'pip install \"{RAY_PIN}\"' in the "
                             "engine environment, or give the cluster's GCS address (HOST:6379) instead")
    if not ray.is_initialized():
        try:
            ray.init(address=address or None, include_dashboard=False, log_to_driver=False, configure_logging=False)
        except ray.exceptions.AuthenticationError:
            raise FlowstyleError(_auth_advice(address)) from None
        except ConnectionError as exc:
            if "auth" in str(exc).lower() or "token" in str(exc).lower():
                raise FlowstyleError(_auth_advice(address)) from None
            raise FlowstyleError(f"cannot reach the Ray cluster at '{address}': {exc}; check the address (or omit it for a "
                                 "local cluster); a cluster from 'ray start --head' with token authentication also needs "
                                 "its token here: RAY_AUTH_TOKEN or ~/.ray/auth_token ('ray get-auth-token' on the head), "
                                 "with RAY_AUTH_MODE=token set before the engine starts") from None
    return ray


def _auth_advice(address: str) -> str:
    mode = os.environ.get("RAY_AUTH_MODE", "unset")
    return (f"the Ray cluster at '{address}' refused the connection: it uses token authentication (Ray 2.60's "
            f"default for 'ray start --head'; RAY_AUTH_MODE here is {mode}): give the engine the cluster's token "
            "as RAY_AUTH_TOKEN or in ~/.ray/auth_token (from 'ray get-auth-token' on the head) with RAY_AUTH_MODE=token")


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
