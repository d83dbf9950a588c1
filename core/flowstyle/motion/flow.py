"""Optical flow between input frames (DESIGN 4.1): OpenCV DIS and DeepFlow, torchvision RAFT.

Backends are a name -> builder registry, as torchvision registers its models.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional, Union

import cv2
import numpy as np
import torch

from ..base.errors import FlowstyleError
from ..base.recent import Recent
from ..io.frames import Frame
from .flow_cache import FlowCache

__all__ = ["FLOW_BACKENDS", "flow_backend", "multiscale", "FlowEstimator", "read_flo"]

FlowFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _gray8(rgb: np.ndarray) -> np.ndarray:
    """8-bit gray of an RGB float frame (rounded to 8 bit per channel first). torch does the float
    arithmetic: numpy's clip and casts cost 5 ms a 1024x436 frame, a third of a DIS flow. The flow
    backends keep it for the last few frames (:class:`~flowstyle.base.recent.Recent`): a pair's two
    flows and the next pair share each frame's conversion (2 ms a 1024x436 frame; four per pair without)."""
    rgb8 = torch.from_numpy(np.ascontiguousarray(rgb, np.float32)).clamp(0, 1).mul_(255).add_(0.5).to(torch.uint8)
    return cv2.cvtColor(rgb8.numpy(), cv2.COLOR_RGB2GRAY)


def _dis(preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM) -> FlowFn:
    """OpenCV DIS (Kroeger et al. 2016), preset MEDIUM: about 40 ms a 1024x436 pair on 2 cores."""
    dis, gray = cv2.DISOpticalFlow_create(preset), Recent(_gray8)
    return lambda a, b: dis.calc(gray(a), gray(b), None)


def _dis_fast() -> FlowFn:
    """OpenCV DIS, preset FAST (stops at quarter resolution): about 13 ms a 1024x436 pair; fast mode's default."""
    return _dis(cv2.DISOPTICAL_FLOW_PRESET_FAST)


def _deepflow() -> FlowFn:
    """OpenCV contrib DeepFlow (Weinzaepfel et al. 2013), the papers' choice; seconds per pair."""
    df, gray = cv2.optflow.createOptFlow_DeepFlow(), Recent(_gray8)
    return lambda a, b: df.calc(gray(a), gray(b), None)


def _raft(*, device: str = "cpu", weights: Optional[str] = None) -> FlowFn:
    """torchvision RAFT (Teed & Deng 2020): ``raft_large`` with torchvision's download, or a local
    torchvision-format state dict of ``raft_large`` or ``raft_small`` (loaded ``weights_only``).

    Frames are padded (replicate) to a multiple of 8 and at least 128 px, and the flow cropped back.
    """
    import torch
    import torch.nn.functional as F
    from torchvision.models.optical_flow import Raft_Large_Weights, raft_large, raft_small

    if weights:
        path = Path(weights)
        if not path.is_file():
            raise FlowstyleError(f"RAFT weights '{path}' not found: give a torchvision raft_large/raft_small state dict")
        state = torch.load(path, map_location="cpu", weights_only=True)
        for build in (raft_large, raft_small):
            model = build(weights=None)
            if set(model.state_dict()) == set(state):
                model.load_state_dict(state)
                break
        else:
            raise FlowstyleError(f"'{path}' is not a torchvision RAFT state dict (its keys match neither raft_large nor raft_small)")
    else:
        try:
            model = raft_large(weights=Raft_Large_Weights.DEFAULT, progress=False)
        except Exception as exc:  # no network, proxy, disk full ...
            raise FlowstyleError(
                f"cannot download the RAFT weights ({type(exc).__name__}): connect to the internet once, "
                "or pass a local file with --raft-weights, or use --flow dis"
            ) from None
    model = model.eval().to(device)

    @torch.no_grad()
    def run(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        h, w = a.shape[:2]
        ph, pw = max(128 - h, (-h) % 8), max(128 - w, (-w) % 8)  # multiples of 8, at least 128 (RAFT's pyramid)
        t = [F.pad(torch.from_numpy(x).permute(2, 0, 1)[None].to(device) * 2 - 1, (0, pw, 0, ph), mode="replicate")
             for x in (a, b)]
        flow = model(t[0], t[1])[-1][0, :, :h, :w]  # (2, H, W), last refinement
        return flow.permute(1, 2, 0).float().cpu().numpy()

    return run


FLOW_BACKENDS: dict[str, Callable[..., FlowFn]] = {"dis": _dis, "dis-fast": _dis_fast, "deepflow": _deepflow, "raft": _raft}


def flow_backend(name: str, *, scales: int = 1, **options) -> FlowFn:
    """Build a flow function ``(rgb_a, rgb_b) -> (H, W, 2) float32`` flow a -> b by backend name.

    ``options`` go to backends that take them (RAFT: ``device``, ``weights``); ``scales`` > 1
    wraps the backend in :func:`multiscale`.
    """
    if name not in FLOW_BACKENDS:
        raise FlowstyleError(f"unknown flow backend '{name}': choose one of {', '.join(sorted(FLOW_BACKENDS))}")
    fn = FLOW_BACKENDS[name](**options) if name == "raft" else FLOW_BACKENDS[name]()
    return multiscale(fn, scales) if scales > 1 else fn


def _photometric_error(a: np.ndarray, b: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """|a(x) − b(x + flow(x))| averaged over channels and a 5x5 window: (H, W)."""
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    warped = cv2.remap(b, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return cv2.blur(np.abs(a - warped).mean(axis=2), (5, 5))


def multiscale(fn: FlowFn, scales: int) -> FlowFn:
    """Flow at ``scales`` resolutions (full, 1/2, 1/4 ...), picked per pixel by photometric error.

    Seed 000's cure for flow that fails on large motion: a coarser scale sees a 30-px move as a
    15-px one. Each pixel keeps the candidate whose end point matches the other frame best
    (colour difference over a 5x5 window). Costs the coarse flows (each 1/4 of the one before)
    and one remap per candidate.
    """
    def run(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        h, w = a.shape[:2]
        best = fn(a, b)
        err = _photometric_error(a, b, best)
        for level in range(1, scales):
            f = 2 ** level
            size = (max(8, w // f), max(8, h // f))
            small = fn(cv2.resize(a, size, interpolation=cv2.INTER_AREA), cv2.resize(b, size, interpolation=cv2.INTER_AREA))
            cand = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR) * np.array([w / size[0], h / size[1]], np.float32)
            e = _photometric_error(a, b, cand)
            better = e < err
            best = np.where(better[..., None], cand, best)
            err = np.minimum(e, err)
        return best.astype(np.float32)

    return run


class FlowEstimator:
    """Forward and backward flow between input frames, through the cache.

    ``pair(a, b)`` returns ``(flow a -> b, flow b -> a)``, each (H, W, 2) float32 in pixels,
    channel 0 = dx. ``prefetch(a, b)`` computes a pair in background threads, so the flow runs while
    the caller does something else; asking for it then waits for that. The last few flows are kept
    in memory by the frames' contents.

    A backend holds state (DIS's buffers, the gray frames it keeps), so it runs one flow at a time.
    Running the background pair's two directions at once, on two instances of DIS, measured no better
    on an H200 machine (fast mode still waited about 22 ms a frame for the flow either way; our guess,
    not measured: OpenCV runs a parallel loop serially while another thread's is under way), so one
    thread computes both.
    """

    KEEP = 6  # flows kept in memory: a pair in hand, the next one prefetched, one more pair

    def __init__(self, backend: str = "dis", cache: Optional[FlowCache] = None, *, scales: int = 1, **options):
        self.backend = backend if scales == 1 else f"{backend}@{scales}"  # names the cache entries too
        self._fn = flow_backend(backend, scales=scales, **options)
        self._lock = threading.Lock()  # one flow at a time, and the kept flows changed by one thread at a time
        self.cache = cache or FlowCache(None)
        self.seconds = 0.0  # time the caller waited in flow(), cache reads included
        self._kept: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._worker: Optional[ThreadPoolExecutor] = None
        self._jobs: list[Future] = []

    @staticmethod
    def _key(a: Frame, b: Frame) -> tuple:
        return a.key, b.key, a.rgb.shape

    def _compute(self, a: Frame, b: Frame) -> np.ndarray:
        key = self._key(a, b)
        with self._lock:
            f = self._kept.get(key)
            if f is None:
                f = self.cache.get(self.backend, a, b)
            if f is None:
                # rounded to the cache's float16 so a fresh and a cached flow give identical results (--resume);
                # torch converts with the CPU's half-float instructions, numpy one value at a time
                half = torch.from_numpy(np.ascontiguousarray(self._fn(a.rgb, b.rgb), np.float32)).half()
                self.cache.put(self.backend, a, b, half.numpy())
                f = half.float().numpy()
            self._kept[key] = f
            self._kept.move_to_end(key)
            while len(self._kept) > self.KEEP:
                self._kept.popitem(last=False)
            return f

    def prefetch(self, a: Frame, b: Union[Frame, Callable[[], Frame]]) -> None:
        """Compute both flows between ``a`` and ``b`` in a background thread; ``b`` may be a function
        giving the frame (then it is read there too)."""
        def both() -> None:
            other = b() if callable(b) else b
            self._compute(a, other)
            self._compute(other, a)

        if self._worker is None:
            self._worker = ThreadPoolExecutor(1, thread_name_prefix="flowstyle-flow")
        self._jobs = [j for j in self._jobs if not j.done()] + [self._worker.submit(both)]

    def settle(self) -> None:
        """Wait for the flows started in the background. Their errors are not raised here: a flow
        asked for again is computed again, and raises where it is wanted."""
        for job in self._jobs:
            job.exception()  # waits; an error is left for the flow asked for again
        self._jobs = []

    def flow(self, a: Frame, b: Frame) -> np.ndarray:
        t = time.perf_counter()
        if self._key(a, b) not in self._kept:
            self.settle()  # it may be the one a background job is on
        f = self._compute(a, b)
        self.seconds += time.perf_counter() - t
        return f

    def pair(self, a: Frame, b: Frame) -> tuple[np.ndarray, np.ndarray]:
        return self.flow(a, b), self.flow(b, a)


def read_flo(path: Path | str) -> np.ndarray:
    """Read a Middlebury .flo file as (H, W, 2) float32 (values with |f| > 1e9 are unknown)."""
    with open(path, "rb") as f:
        magic = np.fromfile(f, np.float32, 1)
        if magic.size != 1 or abs(float(magic[0]) - 202021.25) > 1e-3:
            raise FlowstyleError(f"'{path}' is not a .flo file (bad magic number)")
        w, h = np.fromfile(f, np.int32, 2)
        data = np.fromfile(f, np.float32, 2 * w * h)
    return data.reshape(h, w, 2)
