"""Quality mode (DESIGN 4.4): Ruder et al.'s per-frame optimization on VGG-19 features, with
temporal losses under the long-term masks and multi-pass processing."""
from .run import preview_quality, run_quality

__all__ = ["run_quality", "preview_quality"]
