"""flowstyle: temporally coherent neural style transfer for video (Ruder, Dosovitskiy & Brox).

    >>> import flowstyle
    >>> flowstyle.stylize("shot.mp4", "builtin:7", "out/", flowstyle.Settings(size=512))

The data path, one subpackage per stage: ``io`` (frames in, files out) -> ``motion`` (flow,
masks, warping) -> ``fast`` / ``quality`` (the two ways to make a frame), directed by
``keyframes`` and scaled out by ``scale``; ``pipeline`` alone knows their order.
"""
from .base import VERSION as __version__
from .base.errors import FlowstyleError
from .io.styles import StyleRef
from .settings import RunOptions, Settings

__all__ = ["stylize", "Settings", "RunOptions", "StyleRef", "FlowstyleError", "__version__"]


def __getattr__(name: str):
    """``stylize`` and ``run`` load the pipeline (and torch) on first use, so ``flowstyle --help`` is instant."""
    if name in ("stylize", "run"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'flowstyle' has no attribute {name!r}")
