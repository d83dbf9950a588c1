"""Which torch device a run uses: cuda, then mps, then cpu; an explicit choice is checked."""
from __future__ import annotations

from .errors import FlowstyleError

__all__ = ["pick_device", "DEVICES"]

DEVICES = ("auto", "cpu", "cuda", "mps")


def pick_device(name: str = "auto") -> str:
    """'auto' -> cuda, then mps, then cpu; an explicit name is checked to exist."""
    import torch

    mps = getattr(torch.backends, "mps", None)
    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise FlowstyleError("--device cuda was asked for but no CUDA GPU is visible to torch: use --device auto or cpu")
    if name == "mps" and not (mps is not None and mps.is_available()):
        raise FlowstyleError("--device mps was asked for but Metal is not available: use --device auto or cpu")
    return name
