"""The shared base every stage may use and that uses no stage: errors, device choice, tensor helpers."""
from .errors import Cancelled, FlowstyleError

__all__ = ["FlowstyleError", "Cancelled", "VERSION"]

VERSION = "0.1.0"  # the engine's version (pyproject.toml says the same)
