"""report.png: a picture and a plot of a run, so flicker can be seen (issue 18).

Stills hide flicker: per-frame stylization and flowstyle look alike frame by frame. Three views
show it:

- frames from the start, middle and end of the shot beside their inputs;
- time slices: one row of pixels through the middle of the frame, stacked over time (time runs
  down). What the input shows there (a still camera: vertical streaks; a pan: slanted ones) the
  output should show too; flicker breaks the streaks into noise across them. Under each slice, its
  change from row to row (bright: the pixel changed from one frame to the next), on one scale for
  every column;
- the warping error of every frame over the shot (Lai et al. 2018, as in report.json), with the
  style keys and painted overrides marked.

:class:`Column` collects one version of the clip (input, output, per-frame stylization) from
frames streamed through it, keeping one row and at most three thumbnails: memory stays flat
whatever the clip's length. :func:`draw_report` draws the columns with matplotlib (Agg, no
window, no pyplot state) and writes the PNG atomically.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

import cv2
import numpy as np

from ..base.errors import FlowstyleError
from .images import atomic_write_bytes

__all__ = ["time_slice", "slice_change", "pick_frames", "Column", "SeenFrames", "taken", "draw_report", "THUMB_SIDE", "WIDTH_PX"]

THUMB_SIDE = 320  # longest side of a thumbnail in the picture, in pixels
WIDTH_PX = 1100  # width of report.png
DPI = 100
SLICE_HEIGHT_IN = 2.2  # time slices are stretched to this height (inches) whatever the clip's length
CHANGE_MAX = 0.25  # row-to-row change shown white (mean over RGB, values in [0, 1])


def middle_row(rgb: np.ndarray) -> np.ndarray:
    """The row of pixels through the middle of an (H, W, 3) frame: (W, 3), a copy."""
    return np.array(rgb[rgb.shape[0] // 2])


def time_slice(frames: Iterable[np.ndarray]) -> np.ndarray:
    """Stack the middle row of each frame over time.

    Args:
        frames: (H, W, 3) arrays in clip order (any iterable; each frame is dropped once its row
            is taken, so a generator keeps one frame in memory).

    Returns:
        (T, W, 3), row t = frame t's middle row, same dtype as the frames.
    """
    rows = [middle_row(f) for f in frames]
    if not rows:
        raise ValueError("time_slice needs at least one frame")
    return np.stack(rows)


def slice_change(slice_: np.ndarray) -> float:
    """Mean absolute change between consecutive rows of a (T, W, 3) float time slice.

    What a viewer sees as noise across the stripes: a stable result changes between rows about
    as much as its input does (motion), a flickering one much more. 0 for a single row.
    """
    if len(slice_) < 2:
        return 0.0
    return float(np.abs(np.diff(slice_.astype(np.float32), axis=0)).mean())


def pick_frames(count: int) -> tuple[int, ...]:
    """0-based indices of the start, middle and end of a ``count``-frame shot (fewer for short shots)."""
    return tuple(sorted({0, (count - 1) // 2, count - 1}))


def _thumbnail(rgb: np.ndarray, side: int = THUMB_SIDE) -> np.ndarray:
    """An (H, W, 3) float frame shrunk so its longest side is at most ``side``, as uint8."""
    h, w = rgb.shape[:2]
    scale = min(1.0, side / max(h, w))
    small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return (np.clip(small, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


@dataclass
class Column:
    """One version of the clip as report.png shows it: a column of thumbnails, a slice, a line.

    Attributes:
        title: what it is ("input", "flowstyle", "per-frame").
        picks: 0-based frames shown as thumbnails (:func:`pick_frames`).
        rows: middle rows seen so far, (W, 3) float32 each.
        thumbs: 0-based frame -> (h, w, 3) uint8 thumbnail.
        errors: 1-based frame -> warping error against the frame before (the plot's line); empty
            for the input.
    """

    title: str
    picks: Sequence[int]
    rows: list = field(default_factory=list)
    thumbs: dict = field(default_factory=dict)
    errors: Mapping[int, float] = field(default_factory=dict)

    def add(self, index: int, rgb: np.ndarray) -> None:
        """Take what the picture needs from frame ``index`` (0-based; frames must come in order)."""
        self.take(index, *taken(rgb, index in self.picks))

    def take(self, index: int, row: np.ndarray, thumb: Optional[np.ndarray]) -> None:
        """Take frame ``index``'s middle row and (for a picked frame) its thumbnail, as :func:`taken` gives them."""
        if index != len(self.rows):
            raise ValueError(f"frames must come in order: expected frame {len(self.rows)}, got {index}")
        self.rows.append(row)
        if index in self.picks:
            self.thumbs[index] = thumb

    def slice(self) -> np.ndarray:
        """(T, W, 3) time slice of the frames added so far."""
        return np.stack(self.rows) if self.rows else np.zeros((0, 0, 3), np.float32)


def taken(rgb: np.ndarray, thumbnail: bool) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """What a :class:`Column` keeps of an (H, W, 3) frame: its middle row (W, 3) float32, and its thumbnail or None."""
    return middle_row(rgb).astype(np.float32), _thumbnail(rgb) if thumbnail else None


@dataclass
class SeenFrames:
    """What report.png takes from each frame, kept as the run writes it (:meth:`RunContext.emit_frame`), so that
    the picture need not decode the input and read the outputs back after the run (measured at 1024 x 436:
    17 ms a frame on cave_2's MP4, 18-40 ms on raft_demo's PNG frames, in every mode). A row per frame and
    column, a thumbnail per picked frame: what the columns hold anyway while the picture is drawn.

    Attributes:
        picks: 0-based frames shown as thumbnails (:func:`pick_frames`).
        input, output: 0-based frame -> (middle row, thumbnail or None) of the input and of the output written.
    """

    picks: Sequence[int]
    input: dict = field(default_factory=dict)
    output: dict = field(default_factory=dict)

    def add(self, index: int, input_rgb: np.ndarray, output_rgb: np.ndarray) -> None:
        """Frame ``index`` (0-based) as read and as written; a frame written again (a later pass) replaces it."""
        pick = index in self.picks
        self.input[index], self.output[index] = taken(input_rgb, pick), taken(output_rgb, pick)


def draw_report(path: Path, columns: Sequence[Column], *, title: str, keys: Sequence[int] = (),
                overrides: Sequence[int] = (), note: str = "") -> None:
    """Draw ``columns`` (the input first) into a PNG at ``path``, written atomically.

    Args:
        columns: the input, then the versions to compare with it; all with the same picks and rows.
        title: the figure's heading (the source, the mode, the mean errors).
        keys, overrides: 1-based frames of the style keys and painted overrides, marked on the plot.
        note: one more line under the heading (what a comparison cost).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    picks = sorted(columns[0].thumbs)
    th, tw = columns[0].thumbs[picks[0]].shape[:2]
    n_cols = len(columns)
    width_in = WIDTH_PX / DPI
    thumb_h = width_in / n_cols * th / tw  # each thumbnail fills its column's width
    heights = [thumb_h] * len(picks) + [SLICE_HEIGHT_IN, SLICE_HEIGHT_IN / 2, 2.2]
    fig = Figure(figsize=(width_in, sum(heights) + 0.9), dpi=DPI)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(len(heights), n_cols, height_ratios=heights, left=0.06, right=0.98, top=1 - 0.75 / (
        sum(heights) + 0.9), bottom=0.45 / (sum(heights) + 0.9), hspace=0.25, wspace=0.04)
    fig.suptitle(title + (f"\n{note}" if note else ""), fontsize=9)
    for c, col in enumerate(columns):
        for r, k in enumerate(picks):
            ax = fig.add_subplot(grid[r, c])
            ax.imshow(col.thumbs[k], interpolation="antialiased")
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(col.title, fontsize=9)
            if c == 0:
                ax.set_ylabel(f"frame {k + 1}", fontsize=8)
        s = _narrow(col.slice())
        ax = fig.add_subplot(grid[len(picks), c])
        ax.imshow(_as_uint8(s), aspect="auto", interpolation="nearest", extent=(0, s.shape[1], len(s) + 0.5, 0.5))
        _axis_labels(ax, c, "time slice (time runs down)", "frame")
        ax = fig.add_subplot(grid[len(picks) + 1, c])
        change = np.abs(np.diff(s, axis=0)).mean(2) if len(s) > 1 else np.zeros((1, s.shape[1]))
        ax.imshow(change, aspect="auto", interpolation="nearest", cmap="gray", vmin=0.0, vmax=CHANGE_MAX,
                  extent=(0, s.shape[1], len(s) + 0.5, 1.5))
        _axis_labels(ax, c, f"row-to-row change, mean {slice_change(col.slice()):.3f}", "change")
    _plot_errors(fig.add_subplot(grid[len(picks) + 2, :]), columns[1:], len(columns[0].rows), keys, overrides)
    fig.canvas.draw()
    atomic_write_bytes(Path(path), _encode(np.asarray(fig.canvas.buffer_rgba())[..., :3]))


def _narrow(s: np.ndarray, max_width: int = 512) -> np.ndarray:
    """A (T, W, 3) float slice narrowed to at most ``max_width`` columns (area filter): what fits the picture."""
    if s.shape[1] <= max_width:
        return s
    return cv2.resize(s, (max_width, len(s)), interpolation=cv2.INTER_AREA).reshape(len(s), max_width, 3)


def _as_uint8(s: np.ndarray) -> np.ndarray:
    return (np.clip(s, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def _axis_labels(ax, column: int, xlabel: str, ylabel: str) -> None:
    """No x ticks, the x label under the axes, the y label and tick labels on the first column only."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xticks([])
    ax.yaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
    ax.tick_params(labelsize=7)
    ax.set_xlabel(xlabel, fontsize=8)
    if column == 0:
        ax.set_ylabel(ylabel, fontsize=8)
    else:
        ax.set_yticklabels([])


def _plot_errors(ax, columns: Sequence[Column], count: int, keys: Sequence[int], overrides: Sequence[int]) -> None:
    """Warping error per frame, one line per column, style keys and painted overrides as vertical lines."""
    colors = {"flowstyle": "tab:blue", "per-frame": "tab:red"}
    for col in columns:
        frames = sorted(k for k, v in col.errors.items() if v is not None)
        if frames:
            mean = float(np.mean([col.errors[k] for k in frames]))
            ax.plot(frames, [col.errors[k] for k in frames], marker=".", markersize=3, linewidth=1,
                    color=colors.get(col.title), label=f"{col.title} (mean {mean:.4g})")
    for frames, style, label in ((keys, "--", "style key"), (overrides, ":", "painted override")):
        for i, k in enumerate(frames):
            ax.axvline(k, color="0.35", linestyle=style, linewidth=1, label=label if i == 0 else None)
    ax.set_xlim(0.5, max(count, 1) + 0.5)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("frame", fontsize=8)
    ax.set_ylabel("warping error", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best")


def _encode(rgb: np.ndarray) -> bytes:
    """The drawn figure, (H, W, 3) uint8, as a 256-colour palette PNG: a third of the bytes of a full-colour
    one (thumbnails of photos compress badly), and encoded once from the canvas's pixels, without a
    full-colour PNG first (0.7-0.8 -> 0.4 s a report at 1100 px wide)."""
    from PIL import Image

    out = io.BytesIO()
    try:
        image = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
        image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(out, "PNG", optimize=True)
    except (OSError, ValueError) as exc:
        raise FlowstyleError(f"cannot encode report.png: {exc}") from None
    return out.getvalue()
