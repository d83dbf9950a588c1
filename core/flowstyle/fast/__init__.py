"""Fast mode (DESIGN 4.6): feed-forward stylizer networks per frame, then a temporal solve in
output space against the warped earlier outputs."""
from .magenta import MagentaStylizer
from .run import FrameSolver, preview_fast, run_fast

__all__ = ["MagentaStylizer", "FrameSolver", "run_fast", "preview_fast"]
