"""What a run is asked to do, checked before the first frame; the one source of every default.

Two frozen dataclasses:

- :class:`Settings`: everything that decides the pixels (DESIGN 3 and 4), and so the ``--resume``
  fingerprint;
- :class:`RunOptions`: how this invocation runs (resume, preview, cache, chunks, Ray), which
  never changes a frame's pixels.

Each field carries its command-line flag and help in its metadata; ``flowstyle.cli`` builds the
parser from them, so a default is written once, here.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from .base.device import DEVICES
from .base.errors import FlowstyleError
from .io.styles import StyleRef, parse_style

__all__ = ["Settings", "RunOptions", "MODE_DEFAULTS", "RECIPES", "parse_range", "parse_offsets", "parse_chunk", "describe_default"]

# Defaults that differ by mode (None in Settings means "the mode's default").
MODE_DEFAULTS = {
    "fast": {"temporal_weight": 1.0, "long_term": (1,), "passes": 1, "flow": "dis-fast"},
    "quality": {"temporal_weight": 1000.0, "long_term": (1, 2, 4), "passes": 1, "flow": "dis"},
}
# Quality mode's recipes: the iteration budgets and the coarse-to-fine start (None in Settings means
# "the recipe's"). fast: within 1 % of the default's loss on a fresh frame at about 1/7 of its time
# (bench/quality_speed.py; README "Quality mode's fast recipe").
RECIPES = {
    "default": {"iterations": 500, "iterations_first": 1000, "coarse_to_fine": 0},
    "fast": {"iterations": 50, "iterations_first": 70, "coarse_to_fine": 2},
}
FLOWS = ("dis", "dis-fast", "deepflow", "raft")
PRECISIONS = ("auto", "float")  # the stylizer networks' arithmetic (fast.magenta.MagentaStylizer)
WARP_MODES = ("bilinear", "bicubic", "nearest")


def parse_range(text: str) -> tuple[int, int]:
    """'START:END' (1-based, inclusive) -> (start, end)."""
    a, sep, b = text.partition(":")
    try:
        start, end = int(a), int(b)
    except ValueError:
        raise FlowstyleError(f"--frames '{text}' is not START:END with whole numbers, like 1:48") from None
    if not sep or start < 1 or end < start:
        raise FlowstyleError(f"--frames '{text}' is empty or starts before 1: use START:END with 1 <= START <= END")
    return start, end


def parse_offsets(text: str) -> tuple[int, ...]:
    """'1,2,4' -> (1, 2, 4)."""
    try:
        out = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise FlowstyleError(f"--long-term '{text}' must be frame offsets like 1,2,4") from None
    if not out or min(out) < 1:
        raise FlowstyleError(f"--long-term '{text}' must be frame offsets of 1 or more, like 1,2,4")
    return out


def parse_chunk(text: str) -> tuple[int, int]:
    """'I/N' -> (I, N), 1-based."""
    a, sep, b = text.partition("/")
    try:
        i, n = int(a), int(b)
    except ValueError:
        i = n = 0
    if not sep or not 1 <= i <= n:
        raise FlowstyleError(f"--chunk '{text}' must be I/N with 1 <= I <= N, like 2/8")
    return i, n


def _file_digest(path: str) -> str:
    """SHA-256 of a file's bytes ('missing' when it cannot be read; the run refuses it later)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return "missing"


def _styles(texts: list[str]) -> tuple[StyleRef, ...]:
    return tuple(parse_style(t) for t in texts)


def option(default: Any, help: str, *, group: str = "general", flag: Optional[str] = None,
           choices: Optional[tuple] = None, metavar: Optional[str] = None,
           parse: Optional[Callable[[Any], Any]] = None, kind: Optional[type] = None,
           repeat: bool = False, const: Optional[str] = None, cli: bool = True, shown: Optional[str] = None):
    """A dataclass field with what the command line needs to offer it.

    Args:
        default: the one default (mode-dependent fields use None and :data:`MODE_DEFAULTS`).
        help: what it does, without the default (the parser appends it).
        flag: the flag, default ``--field-name``. kind: the type argparse reads (default: the
            default's type). parse: turns what argparse read into the field's value (errors are
            :class:`FlowstyleError` lines). repeat: the flag may repeat (a list). const: the flag may
            stand alone and then means this value. cli: offered on the
            command line. shown: how the help shows the default, where ``default`` does not say it.
    """
    meta = dict(help=help, group=group, flag=flag, choices=choices, metavar=metavar, parse=parse, kind=kind,
                repeat=repeat, const=const, cli=cli, shown=shown)
    if isinstance(default, (list, dict)):
        raise TypeError("mutable defaults are not allowed")
    return field(default=default, metadata=meta)


def describe_default(f: dataclasses.Field) -> str:
    """The default of a field as its help text shows it."""
    if f.metadata.get("shown"):
        return f.metadata["shown"]
    if f.default is None and f.name in MODE_DEFAULTS["fast"]:
        def show(v):
            return ",".join(map(str, v)) if isinstance(v, tuple) else f"{v:g}" if isinstance(v, float) else str(v)
        return " fast, ".join(show(MODE_DEFAULTS[m][f.name]) for m in MODE_DEFAULTS) + " quality"
    if isinstance(f.default, bool):
        return "on" if f.default else "off"
    if isinstance(f.default, float):
        return f"{f.default:g}"
    return "none" if f.default is None else str(f.default)


FAST, QUALITY = "fast mode (DESIGN 4.6)", "quality mode (DESIGN 4.4)"


@dataclass(frozen=True)
class Settings:
    """Everything that decides the output (DESIGN 3 and 4).

    Fields left None take the mode's default (:data:`MODE_DEFAULTS`); :meth:`resolved`
    fills them in and checks every value.
    """

    styles: tuple[StyleRef, ...] = option(
        (StyleRef(builtin=7),), "style image path, PATH:WEIGHT, or builtin:N (0-25); repeat to blend",
        flag="--style", metavar="STYLE", repeat=True, parse=_styles, kind=str, shown="builtin:7")
    mode: str = option("fast", "fast: feed-forward network + temporal solve; quality: Ruder et al. optimization on VGG-19",
                       choices=("fast", "quality"))
    frames: Optional[tuple[int, int]] = option(
        None, "1-based inclusive range in the input's own order", metavar="START:END", parse=parse_range, kind=str,
        shown="all")
    size: Optional[int] = option(1024, "working size, longest side in pixels, never upscaled; 0 keeps the input's",
                                 metavar="MAX_SIDE", parse=lambda v: v or None, kind=int)
    flow: Optional[str] = option(None, "optical flow backend", choices=FLOWS)
    flow_scales: int = option(1, "flow at this many scales (full, 1/2, 1/4...), picked per pixel by colour match "
                              "(seed 000's multi-scale flow, for large motion); 1 off", metavar="N")
    raft_weights: Optional[str] = option(None, "local torchvision RAFT state dict for --flow raft", metavar="PATH",
                                         shown="torchvision's download")
    temporal_weight: Optional[float] = option(
        None, "weight of the temporal term γ (quality: masked MSE on the 0-255 image, as artistic-videos); 0 turns "
        "temporal terms off (fast: per-frame stylization; quality: also starts each frame from its content)",
        metavar="G", kind=float)
    long_term: Optional[tuple[int, ...]] = option(None, "earlier frames J tied by the temporal term",
                                                  metavar="1,2,4", parse=parse_offsets, kind=str)
    passes: Optional[int] = option(None, "multi-pass processing, alternating directions (quality mode)", kind=int)
    mask: str = option("hard", "flow reliability masks", choices=("hard", "soft"))
    device: str = option("auto", "compute device", choices=DEVICES)
    keyframes: Optional[str] = option(None, "style keys and painted overrides (DESIGN 4.5)", metavar="FILE.json")
    mask_context: float = option(12.0, "lower the temporal pull within this many pixels of unreliable ones (a moving "
                                 "object's edges), in pixels of the stylizer network's input (the working size / "
                                 "--stroke-scale), whose reach it follows: no ghost trails, a little less stability "
                                 "beside moving objects; 0 off", metavar="PX")
    warp_mode: str = option("bicubic", "resampling of the warped earlier results", choices=WARP_MODES)
    # fast mode (DESIGN 4.6)
    fidelity_weight: Optional[float] = option(None, "λ: pull towards the per-frame stylization (with stroke sources it "
                                              "is the only term that mixes the network's new strokes into traced "
                                              "pixels, and 0.1 measured better there)", group=FAST, metavar="L",
                                              kind=float, shown="0.1 with stroke sources, else 0.2")
    gradient_weight: float = option(1.0, "g: pull the result's gradients (its strokes) towards the per-frame "
                                    "stylization's, or where traced the past's (--carry-detail); solved by "
                                    "conjugate gradients; 0: the exact per-pixel minimizer",
                                    group=FAST, metavar="G")
    carry_detail: float = option(1.0, "where the scene is traced, pull the result's gradients towards the "
                                 "warped past's instead of the per-frame stylization's (0: all from the per-frame "
                                 "stylization, 1: all from the past where fully traced): strokes that hold "
                                 "still on the scene instead of being redrawn each frame (0 on frames where a style key's "
                                 "mix changes)", group=FAST, metavar="K")
    stroke_sources: Optional[int] = option(
        None, "with --carry-detail: a traced pixel's strokes are read once from the output frame that last redrew "
        "them, at its traced position, instead of from the previous output warped again each frame (which blends "
        "the network's strokes of many frames: a painting's grain drifts); up to N such frames kept, and every Nth "
        "frame of the shot they start again from the previous output (N frames of memory; a chunk's lead-in grows "
        "by N); 0 off. On by default with a style image, whose network redraws its grain differently each frame",
        group=FAST, metavar="N", kind=int, shown="8 with a style image, 0 with built-in styles only")
    stroke_band: float = option(8.0, "with --stroke-sources: the temporal pull takes detail finer than this Gaussian "
                                "sigma (px) from the stroke sources, coarser shading from the warped previous "
                                "output; 0: the sources set only the gradient term", group=FAST, metavar="PX")
    solver: str = option("exact", "temporal solver: exact (minimizes the energy: per pixel, or conjugate gradients "
                         "when g > 0) or band (the former two-band filter, a heuristic)", group=FAST,
                         choices=("exact", "band"))
    keep_detail: float = option(0.5, "seed 000's anti-blur after the solve (a heuristic): raise the finest band "
                                "where blending in and resampling the past lowered it below the per-frame "
                                "stylization's detail; 1 restores it fully, 0.5 half of the way (sharpness "
                                "0.97-1.0 of per-frame; 1 over-sharpens and costs 2-6 percent more warping "
                                "error), 0 off (softer, 0.82-0.95)", group=FAST, metavar="S")
    incremental_mask: int = option(0, "seed 000's incremental mask: a newly traced pixel's pull builds up over "
                                   "this many frames, and resets where tracing breaks; 0 off", group=FAST, metavar="N")
    solver_iterations: int = option(3, "pcg: at most this many iterations per frame (3 come within 0.25/255 of "
                                    "the exact minimizer on average, and grade as 8 do)", group=FAST)
    detail: float = option(0.7, "band solver: share of the fine band kept from the per-frame stylization",
                           group=FAST, metavar="D")
    band: int = option(8, "band solver: cut-off between the bands, in pixels", group=FAST, metavar="PX")
    stroke_scale: float = option(1.0, "size of the brush strokes relative to the frame: the stylizer network runs "
                                 "at the working size / S and is resized back (2: strokes twice as large, about 4x "
                                 "faster, softer detail)", group=FAST, metavar="S")
    precision: str = option("auto", "the stylizer networks' arithmetic. auto: half precision on CUDA; on a CPU with "
                            "native bfloat16, the arbitrary-style network's 3x3 convs in bfloat16 (output within "
                            "6/255 of float32; the shipped int8 file itself is 57-109/255 away). float: float32 "
                            "everywhere (the same bytes on every CPU)", group=FAST, choices=PRECISIONS)
    stylizer: Optional[str] = option(None, "a video network written by 'flowstyle train' in place of the shipped "
                                     "network (it brings its own style; --style and style keys do not apply)",
                                     group=FAST, metavar="PATH", shown="the shipped Magenta networks")
    # quality mode (DESIGN 4.4)
    content_weight: float = option(5.0, "α: weight of the relu4_2 feature MSE (the reference's scale: "
                                   "artistic-videos' weights mean here what they mean there)", group=QUALITY)
    style_weight: float = option(100.0, "β: weight of the Gram-matrix MSE summed over relu1_1..relu5_1", group=QUALITY)
    tv_weight: float = option(1e-3, "total variation, on the reference's 0-255 image scale", group=QUALITY)
    recipe: str = option("default", "iteration budgets: default (the papers') or fast (coarse-to-fine start, "
                         "fewer iterations: within 1 percent of the default's loss in about a seventh of its time)",
                         group=QUALITY, choices=tuple(RECIPES))
    iterations: Optional[int] = option(None, "iterations per frame after the first", group=QUALITY, kind=int,
                                       shown="the recipe's: 500, fast 50")
    iterations_first: Optional[int] = option(None, "iterations for the first frame (at full size)", group=QUALITY,
                                             kind=int, shown="the recipe's: 1000, fast 70")
    optimizer: str = option("lbfgs", "optimizer (lbfgs-wolfe: with a line search)", group=QUALITY,
                            choices=("lbfgs", "lbfgs-wolfe", "adam"))
    init: str = option("prev-warped", "start of frames after the first", group=QUALITY,
                       choices=("prev-warped", "prev", "content", "random"))
    init_first: str = option("content", "start of the first frame (and of frames with no temporal term)",
                             group=QUALITY, choices=("content", "random"))
    vgg_weights: Optional[str] = option(None, "local torchvision VGG-19 state dict", group=QUALITY, metavar="PATH",
                                        shown="torchvision's download")
    style_scale: float = option(1.0, "size of the style image relative to the frame", group=QUALITY)
    keep_colors: bool = option(False, "transfer luminance only, keep the input's colours", group=QUALITY)
    seed: int = option(0, "random seed", group=QUALITY)
    coarse_to_fine: Optional[int] = option(None, "coarser levels (each half size, 2.5x the iterations of the level "
                                           "above) optimized before a fresh frame's full size", kind=int,
                                           shown="the recipe's: 0, fast 2", group=QUALITY, metavar="LEVELS")
    temporal_luminance: bool = option(False, "luminance-aware temporal term: the target follows the input's "
                                      "lighting changes (ReCoNet)", group=QUALITY)
    feature_temporal_weight: float = option(0.0, "feature-level temporal term on relu3_1 (ReCoNet); 0 off",
                                            group=QUALITY)
    blend: float = option(0.5, "multi-pass δ: each frame of a later pass starts from δ · its last result + (1 − δ) · "
                          "its warped neighbour where traced (Ruder et al. 2018)", group=QUALITY, metavar="D")
    temporal_from_pass: Optional[int] = option(None, "multi-pass: the temporal loss is on from this pass", group=QUALITY,
                                               metavar="P", kind=int, shown="the middle pass, N // 2 + 1")
    sharpness_weight: float = option(3.0, "anti-blur term: keep the traced detail energy (seed 000); 0 off",
                                     group=QUALITY)

    def resolved(self) -> "Settings":
        """A copy with mode defaults filled in, after checking every value a user can set."""
        if self.mode not in MODE_DEFAULTS:
            raise FlowstyleError(f"unknown mode '{self.mode}': use fast or quality")
        d = MODE_DEFAULTS[self.mode]
        r = RECIPES.get(self.recipe, RECIPES["default"])  # an unknown recipe is refused below
        s = dataclasses.replace(
            self,
            **{k: v if getattr(self, k) is None else int(getattr(self, k)) for k, v in r.items()},
            temporal_weight=d["temporal_weight"] if self.temporal_weight is None else float(self.temporal_weight),
            long_term=d["long_term"] if self.long_term is None else tuple(sorted(set(self.long_term))),
            passes=d["passes"] if self.passes is None else int(self.passes),
            flow=d["flow"] if self.flow is None else self.flow,
        )
        # stroke sources by default where they buy something: a style image's network redraws its grain each frame
        # (the painting's style drift 1.32 / 1.65 / 1.19 without them, 1.10 / 1.17 / 1.10 with them, README); a
        # built-in style's drift is within the bar without them, and they cost 0.1-0.2x of fast mode's time
        sources = s.stroke_sources if s.stroke_sources is not None else (
            8 if s.mode == "fast" and not s.stylizer and any(st.image is not None for st in s.styles) else 0)
        s = dataclasses.replace(s, stroke_sources=int(sources), fidelity_weight=float(
            s.fidelity_weight if s.fidelity_weight is not None else 0.1 if sources else 0.2))
        for f in dataclasses.fields(s):
            choices = f.metadata.get("choices")
            value = getattr(s, f.name)
            if choices and value not in choices:
                raise FlowstyleError(f"unknown {f.name.replace('_', ' ')} '{value}': use "
                                     f"{', '.join(choices[:-1])} or {choices[-1]}")
            if isinstance(value, float) and not math.isfinite(value):
                raise FlowstyleError(f"--{f.name.replace('_', '-')} must be a finite number, got {value}")
        if s.temporal_weight < 0:
            raise FlowstyleError(f"--temporal-weight must be 0 or more, got {s.temporal_weight:g}")
        if not s.long_term or min(s.long_term) < 1:
            raise FlowstyleError(f"--long-term needs frame offsets of 1 or more, like 1,2,4; got {s.long_term}")
        if s.flow_scales < 1:
            raise FlowstyleError(f"--flow-scales must be 1 or more, got {s.flow_scales}")
        if s.mask_context < 0 or 0 < s.mask_context < 1:
            raise FlowstyleError(f"--mask-context is a radius in pixels now (it was a fraction of the frame's long side): "
                                 f"give 1 or more, e.g. 12 (the default), or 0 to turn it off; got {s.mask_context:g}")
        if s.passes < 1:
            raise FlowstyleError(f"--passes must be 1 or more, got {s.passes}")
        if not 0 <= s.blend <= 1 or (s.temporal_from_pass is not None and s.temporal_from_pass < 1):
            raise FlowstyleError(f"--blend must be in [0, 1] and --temporal-from-pass 1 or more; got {s.blend:g} "
                                 f"and {s.temporal_from_pass}")
        if s.size is not None and s.size < 16:
            raise FlowstyleError(f"--size must be at least 16 pixels, got {s.size}")
        if s.iterations < 1 or s.iterations_first < 1:
            raise FlowstyleError(f"--iterations and --iterations-first must be 1 or more, got {s.iterations} and {s.iterations_first}")
        if min(s.content_weight, s.style_weight, s.tv_weight, s.feature_temporal_weight, s.sharpness_weight) < 0:
            raise FlowstyleError("quality-mode weights (content, style, tv, feature, sharpness) must be 0 or more")
        if s.style_scale <= 0 or s.coarse_to_fine < 0:
            raise FlowstyleError(f"--style-scale must be positive and coarse-to-fine levels 0 or more, got {s.style_scale:g} and {s.coarse_to_fine}")
        if not 0.25 <= s.stroke_scale <= 8:
            raise FlowstyleError(f"--stroke-scale must be between 0.25 and 8, got {s.stroke_scale:g}")
        if s.fidelity_weight <= 0 or not 0 <= s.detail <= 1 or s.band < 1:
            raise FlowstyleError(f"fast mode needs --fidelity-weight > 0, --detail in [0, 1] and --band >= 1; "
                                 f"got {s.fidelity_weight:g}, {s.detail:g} and {s.band}")
        if s.keep_detail < 0:
            raise FlowstyleError(f"--keep-detail must be 0 (off) or more, got {s.keep_detail:g}")
        if not 0 <= s.carry_detail <= 1:
            raise FlowstyleError(f"--carry-detail must be between 0 and 1, got {s.carry_detail:g}")
        if s.stroke_sources == 1 or s.stroke_sources < 0 or s.stroke_band < 0:
            raise FlowstyleError(f"--stroke-sources must be 0 (off) or 2 or more, and --stroke-band 0 or more; "
                                 f"got {s.stroke_sources} and {s.stroke_band:g}")
        if s.precision not in PRECISIONS:
            raise FlowstyleError(f"--precision must be {' or '.join(PRECISIONS)}, got '{s.precision}'")
        if s.stylizer and s.mode != "fast":
            raise FlowstyleError(f"--stylizer '{s.stylizer}' is a fast-mode network: use --mode fast, or drop --stylizer")
        return s

    def fingerprint(self) -> dict:
        """The settings that decide the pixels (for --resume), as plain JSON values."""
        d = dataclasses.asdict(self)
        for k in ("device", "keyframes"):
            d.pop(k)
        d["styles"] = [str(s) for s in self.styles]
        if self.stylizer:  # a retrained file at the same path changes the pixels
            d["stylizer"] = f"{self.stylizer} sha256:{_file_digest(self.stylizer)}"
        return d


OUTPUT, PARALLEL = "output and progress", "parallel runs (fast mode)"


@dataclass(frozen=True)
class RunOptions:
    """How one invocation runs; none of it changes a frame's pixels."""

    resume: bool = option(False, "keep frames whose inputs and settings are unchanged", group=OUTPUT)
    preview: Optional[int] = option(None, "stylize only this frame (1-based within the range) into OUT/preview.png",
                                    group=OUTPUT, metavar="FRAME", kind=int)
    cache_dir: Optional[str] = option(None, "flow cache folder", group=OUTPUT, flag="--cache", metavar="DIR",
                                      shown="OUT/.flowstyle/flow")
    debug: bool = option(False, "also write the flow reliability masks to OUT/debug", group=OUTPUT)
    report_image: bool = option(True, "do not draw OUT/report.png (frames beside their inputs, time slices, the "
                                "warping error over the shot)", group=OUTPUT, flag="--no-report-image",
                                shown="report.png drawn")
    compare_perframe: bool = option(False, "also run per-frame stylization (fast mode's network without the "
                                    "temporal step) and show it in report.png and report.json: one more network "
                                    "pass per frame", group=OUTPUT)
    ray: Optional[str] = option(None, "run chunks as Ray tasks: a local cluster without ADDRESS, else that "
                                "cluster's address", group=PARALLEL, metavar="ADDRESS", const="", shown="off")
    chunks: Optional[int] = option(None, "number of chunks", group=PARALLEL, metavar="N", kind=int,
                                   shown="two per Ray worker")
    chunk: Optional[tuple[int, int]] = option(None, "render-farm job: only chunk I of N; then run "
                                              "'flowstyle stitch ... --chunks N'", group=PARALLEL, metavar="I/N",
                                              parse=parse_chunk, kind=str, shown="all")
    margin: int = option(8, "lead-in frames run before each chunk to warm its temporal state", group=PARALLEL)
    stitch: bool = option(False, "only re-solve the chunk boundaries of an N-chunk run", cli=False)
    lock: bool = option(True, "hold the output folder's lock (off only in Ray chunk tasks, whose driver holds it)",
                        cli=False)

    def checked(self) -> "RunOptions":
        if self.margin < 0:
            raise FlowstyleError(f"--margin must be 0 or more, got {self.margin}")
        if self.chunks is not None and self.chunks < 1:
            raise FlowstyleError(f"--chunks must be 1 or more, got {self.chunks}")
        if self.stitch and not self.chunks:
            raise FlowstyleError("flowstyle stitch needs --chunks N, the N the chunk jobs used")
        if self.compare_perframe and self.chunk is not None:
            raise FlowstyleError("--compare-perframe runs over the whole shot: give it to 'flowstyle stitch', "
                                 "not to the --chunk jobs")
        return self
