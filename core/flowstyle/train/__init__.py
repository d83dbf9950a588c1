"""``flowstyle train``: fine-tune a shipped stylizer into a video network (seeds 002-004).

The training loop imports torch; this package's top level only offers the settings, so the CLI
builds its parser without loading torch.
"""
from .config import TrainSettings

__all__ = ["TrainSettings"]
