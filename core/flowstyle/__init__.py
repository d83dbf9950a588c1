"""flowstyle: temporally coherent neural style transfer for video (Ruder, Dosovitskiy & Brox).

    >>> import flowstyle
    >>> flowstyle.stylize("shot.mp4", "builtin:7", "out/", flowstyle.Settings(size=512))

The data path, one subpackage per stage: ``io`` (frames in, files out) -> ``motion`` (flow,
masks, warping) -> ``fast`` / ``quality`` (the two ways to make a frame), directed by
``keyframes`` and scaled out by ``scale``; ``pipeline`` alone knows their order.
"""
import os as _os

# torch's OpenMP threads (GNU libgomp on Linux) spin for a while after each parallel region before they
# sleep. Fast mode interleaves torch ops with OpenCV's own threads (DIS flow, remap), and with as many
# torch threads as cores that spinning takes the cores from OpenCV. A short spin keeps back-to-back torch
# ops quick and lets OpenCV run: measured on 2 cores at 1024 px (sintel_raft_demo, builtin:7), fast mode
# 0.223-0.238 s a frame with 10000 against 0.242-0.249 s with libgomp's default (two sets of alternated
# runs), per-frame stylization no slower. It only counts when flowstyle is imported before torch, and a value the user set wins.
_os.environ.setdefault("GOMP_SPINCOUNT", "10000")

from .base import VERSION as __version__  # noqa: E402
from .base.errors import FlowstyleError  # noqa: E402
from .io.styles import StyleRef  # noqa: E402
from .settings import RunOptions, Settings  # noqa: E402

__all__ = ["stylize", "Settings", "RunOptions", "StyleRef", "FlowstyleError", "__version__"]


def __getattr__(name: str):
    """``stylize`` and ``run`` load the pipeline (and torch) on first use, so ``flowstyle --help`` is instant."""
    if name in ("stylize", "run"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'flowstyle' has no attribute {name!r}")
