"""Long shots: chunks with lead-in margins, the boundary stitch, and Ray tasks (render farms use
the chunks and the stitch directly)."""
from .chunks import Chunk, plan_chunks
from .stitch import stitch_boundary, stitch_chunks

__all__ = ["Chunk", "plan_chunks", "stitch_boundary", "stitch_chunks"]
