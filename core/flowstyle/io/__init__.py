"""Frames in and out: sources (video, folders, patterns), image files, style images, output names, the report."""
from .frames import Frame, FrameSource, fit_size, open_source
from .images import read_image, write_png
from .styles import StyleRef, parse_style

__all__ = ["Frame", "FrameSource", "open_source", "fit_size", "read_image", "write_png", "StyleRef", "parse_style"]
