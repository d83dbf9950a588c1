"""Motion between input frames: optical flow (and its cache), reliability masks, warping, the
step that carries earlier results into a frame, and the measures that use them."""
from .flow import FLOW_BACKENDS, FlowEstimator, flow_backend
from .flow_cache import FlowCache
from .masks import consistency_mask, long_term_masks
from .trace import Traced, trace
from .warp import warp

__all__ = ["FLOW_BACKENDS", "FlowEstimator", "flow_backend", "FlowCache", "consistency_mask", "long_term_masks",
           "Traced", "trace", "warp"]
