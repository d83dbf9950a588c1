"""flowstyle: temporally coherent neural style transfer for video (Ruder, Dosovitskiy & Brox).

    >>> import flowstyle
    >>> flowstyle.stylize("shot.mp4", "builtin:7", "out/", flowstyle.Settings(size=512))
"""
from .errors import FlowstyleError
from .settings import Settings
from .stylize import StyleRef

__version__ = "0.1.0"
__all__ = ["stylize", "Settings", "StyleRef", "FlowstyleError", "__version__"]


def stylize(*args, **kwargs):
    """Stylize a clip; see :func:`flowstyle.pipeline.stylize`."""
    from .pipeline import stylize as _stylize

    return _stylize(*args, **kwargs)
