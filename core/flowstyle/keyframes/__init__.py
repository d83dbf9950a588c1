"""Direction over the shot: style keys (a timeline of style mixes and weights) and painted frames
carried along the flow (DESIGN 4.5)."""
from .timeline import Override, StyleKey, Timeline, blend_styles, load_keyframes, parse_keyframes

__all__ = ["Timeline", "StyleKey", "Override", "blend_styles", "load_keyframes", "parse_keyframes"]
