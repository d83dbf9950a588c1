"""Quality mode (DESIGN 4.4): Ruder, Dosovitskiy & Brox's optimization on VGG-19.

Each frame is optimized for content + style, started from the warped previous result and tied
to the earlier results by the temporal loss under the long-term masks (Ruder et al. 2016).
With ``passes > 1`` the clip is processed in alternating directions, each frame starting from
a blend of its last result and its warped neighbour, temporal loss from the middle pass on
(Ruder et al. 2018, section 5.4).

Entry points for the pipeline: :func:`run_quality` and :func:`preview_quality`.
"""
from __future__ import annotations

import dataclasses
import math
import shutil
import time
from collections import deque
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..base.allocator import keep_large_blocks
from ..base.errors import FlowstyleError
from ..base.tensors import quantize, to_array, to_tensor
from ..context import History, RunContext, run_frames
from ..io import names
from ..io.frames import Frame
from ..io.styles import StyleRef
from ..keyframes.painted import PaintedLooks, painted_styles
from ..keyframes.timeline import Timeline
from ..motion.trace import earlier_results, trace
from ..motion.warp import warp
from ..settings import Settings
from .losses import FEATURE_LAYER, detail_energy, luminance, rgb_to_yiq
from .objective import FrameObjective, LossWeights, StyleBank, Temporal
from .optimize import OptimizeResult, amp_agrees, coarse_to_fine, noise_like, optimize
from .vgg import VGG19Features, vgg19_features

__all__ = ["run_quality", "preview_quality", "check_styles", "Stylist", "blend_start", "pass_order",
           "temporal_from"]


def blend_start(last: torch.Tensor, warped: torch.Tensor, mask: torch.Tensor, delta: float) -> torch.Tensor:
    """A multi-pass start: δ · its last result + (1 − δ) · the warped neighbour, where the mask traces it
    (Ruder et al. 2018, section 5.4); the last result alone where it does not.

    Args:
        last, warped: (1, 3, H, W). mask: (1, 1, H, W) in [0, 1]. delta: δ in [0, 1].
    """
    return last + (1.0 - delta) * mask * (warped - last)


def pass_order(p: int, n: int) -> range:
    """Frame indices of pass ``p`` (1-based) over ``n`` frames: odd passes forward, even passes backward."""
    return range(n) if p % 2 else range(n - 1, -1, -1)


def temporal_from(settings: Settings) -> int:
    """The first pass with the temporal loss: ``--temporal-from-pass``, or the middle pass (N // 2 + 1)."""
    return settings.temporal_from_pass or settings.passes // 2 + 1


def check_styles(timeline: Timeline, frames: Sequence[int]) -> None:
    """Quality mode optimizes towards style *images*: reject builtin (network-only) styles up front."""
    for k in frames:
        for s in timeline.styles_at(k):
            if s.builtin is not None:
                raise FlowstyleError(
                    f"quality mode needs style images, but frame {k + 1} uses builtin:{s.builtin}, a fast-mode "
                    "network with no image: give --style PATH.jpg, or use --mode fast"
                )


class Stylist:
    """What quality mode keeps across frames: the loss network, the Gram targets, the weights.

    Args:
        settings: resolved :class:`~flowstyle.settings.Settings`.
        device: torch device name.
        content_stats: (mean, std) of the clip's luminance, for luminance-only transfer.
        net: a ready-made loss network (tests); default: VGG-19 from ``settings.vgg_weights``
            or torchvision's download.
    """

    def __init__(self, settings: Settings, device: str, *, content_stats: tuple[float, float] = (0.5, 0.25),
                 net: Optional[VGG19Features] = None):
        s = self.settings = settings
        self.device = device
        if torch.device(device).type == "cpu":
            keep_large_blocks()  # VGG's activations at 1024 px are 57-114 MB each
        self.net = (net or vgg19_features(weights=s.vgg_weights)).to(device)
        self.channels_last = device == "cuda"  # faster convolutions there; same loss
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.amp: Optional[torch.dtype] = None
        self._amp_checked = device != "cuda"  # mixed precision only on CUDA, only if the loss agrees
        self.bank = StyleBank(self.net, scale=s.style_scale, luminance_of=content_stats if s.keep_colors else None)
        self.weights = LossWeights(content=s.content_weight, style=s.style_weight, tv=s.tv_weight,
                                   temporal=s.temporal_weight, feature=s.feature_temporal_weight,
                                   sharpness=s.sharpness_weight)

    def at_frame(self, timeline: Timeline, k: int) -> None:
        """Use the style keys' per-key weights at frame ``k`` (DESIGN 4.5; the CLI's values elsewhere)."""
        s = self.settings
        self.weights = dataclasses.replace(
            self.weights, content=timeline.weight_at(k, "content_weight", s.content_weight),
            style=timeline.weight_at(k, "style_weight", s.style_weight),
            temporal=timeline.weight_at(k, "temporal_weight", s.temporal_weight))

    def objective(self, content: torch.Tensor, styles: Sequence[StyleRef], temporal: Optional[Temporal] = None,
                  scale: float = 1.0) -> FrameObjective:
        if scale != 1.0:
            h, w = content.shape[-2:]
            size = (max(16, round(h * scale)), max(16, round(w * scale)))
            content = F.interpolate(content, size=size, mode="bilinear", antialias=True, align_corners=False)
        grams = self.bank.blend(styles, max(content.shape[-2:]))
        return FrameObjective(self.net, content, grams, weights=self.weights, temporal=temporal,
                              keep_colors=self.settings.keep_colors, channels_last=self.channels_last,
                              amp_dtype=self.amp)

    def run(self, content: torch.Tensor, styles: Sequence[StyleRef], init: torch.Tensor, *, iterations: int,
            temporal: Optional[Temporal] = None, fresh: bool = False, callback=None) -> OptimizeResult:
        """Optimize one frame; ``fresh`` (no warped start, no temporal term) allows the coarse-to-fine start."""
        s = self.settings
        if not self._amp_checked:
            self._amp_checked = True
            if amp_agrees(self.objective(content, styles, temporal), init, torch.float16):
                self.amp = torch.float16
        kw = dict(optimizer=s.optimizer, callback=callback)
        if fresh and s.coarse_to_fine:
            return coarse_to_fine(lambda sc: self.objective(content, styles, None, sc), init,
                                  iterations=iterations, levels=s.coarse_to_fine, **kw)
        return optimize(self.objective(content, styles, temporal), init, iterations=iterations, **kw)


def _start(kind: str, content: torch.Tensor, seed: int) -> torch.Tensor:
    return noise_like(content, seed) if kind == "random" else content


def tie(ctx: RunContext, stylist: Stylist, frame: Frame, content: torch.Tensor, neighbours: Sequence, *,
        loss: bool, motion: Optional[dict] = None, later: bool = False) -> tuple[Optional[Temporal], dict, dict]:
    """The temporal terms tying ``frame`` to already stylized neighbours (DESIGN 4.2-4.4).

    Args:
        neighbours: (j, neighbour frame, its result (H, W, 3)) with j the distance (1 = nearest).
        loss: also build the temporal-loss targets (else only the warped results and masks).
        motion: receives j -> (flow neighbour -> frame, flow frame -> neighbour, consistency mask, ω_j).
        later: the neighbours are later frames (a backward pass): ``--debug`` names their masks -j.

    Returns:
        (:class:`Temporal` or None, j -> ω_j (1, 3, H, W), j -> consistency mask c_j (1, 1, H, W)).
    """
    s, dev, net = ctx.settings, ctx.device, stylist.net
    traced = trace(ctx.flows, frame, neighbours, device=dev, soft=s.mask == "soft", warp_mode=s.warp_mode)
    if motion is not None:
        motion.update(traced.motion())
    ctx.write_debug_masks(frame, {(-j if later else j): m for j, m in traced.masks.items()})
    warped, masks, bws, outs = traced.warped, traced.masks, traced.flows_bw, traced.results
    if s.temporal_luminance:  # ReCoNet: the output may change as the input's luminance does
        for j, nb_frame, _ in neighbours:
            warped[j] = warped[j] + luminance(content) - warp(luminance(to_tensor(nb_frame.rgb, dev)), bws[j])
    if not loss or not warped:
        return None, warped, masks
    pulls = traced.long_term(s.long_term)
    t = Temporal(warped=[w for _, w, _ in pulls], masks=[c for _, _, c in pulls])
    if s.feature_temporal_weight:
        with torch.no_grad():
            for j, _, c in pulls:
                f = getattr(net(outs[j], upto=FEATURE_LAYER), FEATURE_LAYER).float()
                h, w = f.shape[-2:]
                H, W = bws[j].shape[-2:]
                bw_small = F.interpolate(bws[j], size=(h, w), mode="bilinear", align_corners=False)
                bw_small = bw_small * torch.tensor([w / W, h / H], device=dev).view(1, 2, 1, 1)
                t.features.append(warp(f, bw_small))
                t.feature_masks.append(F.interpolate(c, size=(h, w), mode="area"))
    if s.sharpness_weight and 1 in outs:
        t.energy, t.energy_mask = warp(detail_energy(outs[1]), bws[1]), masks[1]
    return t, warped, masks


def _callback(ctx: RunContext):
    return lambda it, loss: ctx.check_cancel()


def _with_guides(temporal: Optional[Temporal], extra: Sequence) -> Optional[Temporal]:
    """Add painted-override pulls (image, weight) to the temporal terms (DESIGN 4.5)."""
    if not extra:
        return temporal
    temporal = temporal or Temporal()
    temporal.warped += [img for img, _ in extra]
    temporal.masks += [m for _, m in extra]
    return temporal


def _stylize(ctx: RunContext, stylist: Stylist, timeline: Timeline, frame: Frame, neighbours: Sequence, *, first: bool,
             motion: dict, extra: Sequence = (), styles: Sequence = ()) -> np.ndarray:
    """One frame of a single pass: choose the start, tie to the earlier results, optimize."""
    s, rep, index = ctx.settings, ctx.report, frame.index + 1
    content = to_tensor(frame.rgb, ctx.device)
    kind = s.init_first if first else s.init
    t, flow0 = time.perf_counter(), ctx.flows.seconds
    use_loss = s.temporal_weight > 0 and not first
    tied = neighbours if use_loss or kind == "prev-warped" else ()
    temporal, warped, _ = tie(ctx, stylist, frame, content, tied, loss=use_loss, motion=motion)
    temporal = _with_guides(temporal, extra if s.temporal_weight > 0 else ())
    flow_s = ctx.flows.seconds - flow0
    rep.add_time(index, "flow", flow_s)
    rep.add_time(index, "temporal", time.perf_counter() - t - flow_s)
    if kind == "prev-warped" and 1 in warped:
        init = warped[1]
    elif kind == "prev" and neighbours:
        init = to_tensor(neighbours[0][2], ctx.device)
    else:
        init = _start(kind, content, s.seed * 100_003 + frame.index)
    fresh = temporal is None and kind in ("content", "random")
    t = time.perf_counter()
    stylist.at_frame(timeline, frame.index)
    res = stylist.run(content, styles or timeline.styles_at(frame.index), init, temporal=temporal, fresh=fresh,
                      iterations=s.iterations_first if first or fresh else s.iterations, callback=_callback(ctx))
    rep.add_time(index, "stylize", time.perf_counter() - t)
    rep.frame(index)["loss"] = {k: round(v, 6) for k, v in res.parts.items()} | {"iterations": len(res.losses)}
    return quantize(to_array(res.image), frame.bit_depth)


def _single_pass(ctx: RunContext, timeline: Timeline, stylist: Stylist, guides: PaintedLooks) -> None:
    """Front to back through the shared loop, each frame written as it finishes."""
    def solve(frame: Frame, history: History, motion: dict) -> np.ndarray:
        painted = guides.painted(frame.index)
        if painted is not None:  # the artist's frame is the output
            return quantize(painted, frame.bit_depth)
        return _stylize(ctx, stylist, timeline, frame, earlier_results(history, ctx.settings.long_term),
                        first=frame.index == 0, motion=motion, extra=guides.terms(frame.index) if guides else (),
                        styles=painted_styles(guides.overrides, frame.index, timeline.styles_at(frame.index)))

    run_frames(ctx, solve)


class _PassStore:
    """Each frame's latest multi-pass result on disk (float32 .npy), so RAM holds a few frames only."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)

    def save(self, k: int, rgb: np.ndarray) -> None:
        tmp = self.folder / f".{k}.npy"
        np.save(tmp, rgb.astype(np.float32))
        tmp.replace(self.folder / f"{k}.npy")

    def load(self, k: int) -> np.ndarray:
        return np.load(self.folder / f"{k}.npy")

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _multi_pass(ctx: RunContext, timeline: Timeline, stylist: Stylist, guides: PaintedLooks) -> None:
    """Ruder et al. 2018, section 5.4: N passes in alternating directions, frames written at the end.

    Pass 1 stylizes each frame on its own (ceil(iterations_first / N) iterations); pass p > 1 goes
    the other way, each frame starting from δ · its last result + (1 − δ) · its warped neighbour
    (the one processed just before it in this pass) where the neighbour is traced (ceil(iterations /
    N) iterations), with the temporal loss from :func:`temporal_from` on. Each frame thus costs about
    what a single pass spends on it.
    """
    s, rep, n, passes = ctx.settings, ctx.report, len(ctx.source), ctx.settings.passes
    clip = ""
    for k in range(n):  # a frame's result depends on the whole clip: key every frame on all inputs
        clip = ctx.chain_key(ctx.source.read(k), clip)
    keys = [ctx.chain_key(ctx.source.read(k), clip) for k in range(n)]
    if all(ctx.reusable(k + 1, keys[k]) is not None for k in range(n)):
        prev = None
        for k in range(n):
            frame = ctx.source.read(k)
            out = ctx.reusable(k + 1, keys[k])
            ctx.emit_frame(frame, out, keys[k], 0.0, reused=True)
            ctx.measure(prev, frame, out)
            prev = (frame, out)
        return
    store = _PassStore(names.passes_dir(ctx.out))
    seconds, done = [0.0] * n, 0
    try:
        for p in range(1, passes + 1):
            order = pass_order(p, n)
            recent: deque = deque(maxlen=max(s.long_term))
            use_loss = s.temporal_weight > 0 and p >= temporal_from(s)
            budget = math.ceil((s.iterations_first if p == 1 else s.iterations) / passes)
            for k in order:
                ctx.check_cancel()
                t0 = time.perf_counter()
                frame = ctx.source.read(k)
                painted = guides.painted(k)
                if painted is not None:  # the artist's frame stays as painted in every pass
                    store.save(k, painted)
                    recent.append((frame, painted))
                    done += 1
                    continue
                content = to_tensor(frame.rgb, ctx.device)
                temporal, fresh = None, p == 1
                if fresh:
                    init = _start(s.init_first, content, s.seed * 100_003 + k)
                else:
                    last = to_tensor(store.load(k), ctx.device)
                    neighbours = earlier_results(recent, s.long_term)
                    flow0 = ctx.flows.seconds
                    temporal, warped, masks = tie(ctx, stylist, frame, content, neighbours, loss=use_loss,
                                                  later=p % 2 == 0)
                    temporal = _with_guides(temporal, guides.terms(k) if use_loss and guides else ())
                    rep.add_time(k + 1, "flow", ctx.flows.seconds - flow0)
                    init = blend_start(last, warped[1], masks[1], s.blend) if 1 in warped else last
                    rep.add_time(k + 1, "temporal", time.perf_counter() - t0 - (ctx.flows.seconds - flow0))
                t = time.perf_counter()
                stylist.at_frame(timeline, k)
                res = stylist.run(content, painted_styles(guides.overrides, k, timeline.styles_at(k)), init, iterations=budget, temporal=temporal,
                                  fresh=fresh, callback=_callback(ctx))
                rep.add_time(k + 1, "stylize", time.perf_counter() - t)
                spent = rep.frame(k + 1).get("loss", {}).get("iterations", 0) + len(res.losses)
                rep.frame(k + 1)["loss"] = {kk: round(v, 6) for kk, v in res.parts.items()} | {"iterations": spent}
                out = to_array(res.image)
                store.save(k, out)
                recent.append((frame, out))
                seconds[k] += time.perf_counter() - t0
                done += 1
                ctx.progress("stylize", done, n * passes)
        prev = None
        for k in range(n):
            frame = ctx.source.read(k)
            out = quantize(store.load(k), frame.bit_depth)
            ctx.emit_frame(frame, out, keys[k], seconds[k])
            ctx.measure(prev, frame, out)
            prev = (frame, out)
    finally:
        store.remove()


def _luminance_stats(rgb: np.ndarray) -> tuple[float, float]:
    y = rgb_to_yiq(to_tensor(rgb))[:, :1]
    return float(y.mean()), float(y.std())


def run_quality(ctx: RunContext, timeline: Timeline, *, net: Optional[VGG19Features] = None) -> None:
    """The whole quality-mode run (DESIGN 4.4): single pass, or multi-pass when ``passes > 1``.

    Frames go out through ``ctx.emit_frame``; ``--resume`` keeps frames whose chain key is
    unchanged; cancel is checked between frames and every 10 iterations.

    Args:
        net: a ready-made loss network (tests); default from ``settings.vgg_weights``.
    """
    s, n = ctx.settings, len(ctx.source)
    check_styles(timeline, range(n))
    torch.manual_seed(s.seed)
    first = ctx.source.read(0)
    stylist = Stylist(s, ctx.device, content_stats=_luminance_stats(first.rgb), net=net)
    for refs in {timeline.styles_at(k) for k in range(n)}:  # bad style images fail before the first frame
        stylist.bank.blend(refs, max(first.rgb.shape[:2]))
    guides = PaintedLooks(ctx, timeline)
    if s.passes > 1:
        _multi_pass(ctx, timeline, stylist, guides)
    else:
        _single_pass(ctx, timeline, stylist, guides)


def preview_quality(ctx: RunContext, timeline: Timeline, frame: Frame, *, net: Optional[VGG19Features] = None) -> np.ndarray:
    """One frame, no temporal term: ``iterations_first`` iterations from ``init_first``.

    Returns:
        (H, W, 3) float32 in [0, 1].
    """
    s = ctx.settings
    check_styles(timeline, [frame.index])
    torch.manual_seed(s.seed)
    stylist = Stylist(s, ctx.device, content_stats=_luminance_stats(frame.rgb), net=net)
    content = to_tensor(frame.rgb, ctx.device)
    res = stylist.run(content, timeline.styles_at(frame.index), _start(s.init_first, content, s.seed * 100_003 + frame.index),
                      iterations=s.iterations_first, fresh=True, callback=_callback(ctx))
    return to_array(res.image)
