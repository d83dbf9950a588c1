"""Quality mode does what the papers say it does (issue 16, item 1), with a seeded random VGG-19.

Each test compares whole runs that differ in one mechanism and checks the difference a user
would see: the temporal loss (Ruder et al. 2016, eq. 7), the long-term masks (eq. 9) and
multi-pass (Ruder et al. 2018, section 5.4: δ, the pass the temporal loss starts from, the
direction of the passes). Most run on a synthetic clip whose motion is known exactly (a texture
sliding 2 px a frame, the flow given to the engine), so only the mechanism under test decides.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

import flowstyle
from flowstyle import Settings, StyleRef
from flowstyle.base.tensors import to_array, to_tensor
from flowstyle.io import open_source, read_image
from flowstyle.motion import flow as flow_module
from flowstyle.motion.flow import FlowEstimator
from flowstyle.motion.metrics import warping_error
from flowstyle.quality import run as quality

H, W, SHIFT = 40, 56, 2  # frames of H x W; the texture moves SHIFT px to the right each frame
RANDOM_NET = dict(content_weight=5e3, style_weight=1e5)  # see tests/test_quality.py: the random net's scale


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth colour texture with edges, (h, w, 3) float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    low = cv2.resize(rng.random((h // 6, w // 6, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(0.8 * low + 0.2 * (rng.random((h, w, 3)) > 0.5), 0, 1).astype(np.float32)


def _write(folder: Path, frames: list) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for k, f in enumerate(frames):
        cv2.imwrite(str(folder / f"f_{k + 1:03d}.png"), (np.clip(f, 0, 1)[..., ::-1] * 255 + 0.5).astype(np.uint8))
    return folder


def _sliding(folder: Path, n: int) -> Path:
    """n frames of a texture sliding SHIFT px right per frame: frame b(x) = frame a(x - SHIFT (b - a))."""
    big = _texture(H, W + SHIFT * n, seed=1)
    return _write(folder, [big[:, SHIFT * (n - k): SHIFT * (n - k) + W] for k in range(n)])


@pytest.fixture
def sliding_flow(monkeypatch):
    """The engine sees the exact flow of :func:`_sliding`: a -> b is (SHIFT (b - a), 0) everywhere."""
    def flow(self, a, b):
        f = np.zeros(a.rgb.shape[:2] + (2,), np.float32)
        f[..., 0] = SHIFT * (b.index - a.index)
        return f

    monkeypatch.setattr(flow_module.FlowEstimator, "flow", flow)


def _settings(style: str, vgg: Path, **kw) -> Settings:
    """Quality settings on the random net; the papers' terms only (seed 000's sharpness term off), bilinear warps."""
    base = dict(mode="quality", styles=(StyleRef(image=style),), size=W, vgg_weights=str(vgg), device="cpu",
                iterations=8, iterations_first=16, sharpness_weight=0.0, warp_mode="bilinear", **RANDOM_NET)
    return Settings(**(base | kw))


def _outputs(folder: Path) -> list:
    return [read_image(p)[0] for p in sorted(folder.glob("frame_*.png"))]


def _flicker(frames: list) -> float:
    """Mean warping error between consecutive outputs under the exact sliding flow (all traced but the border)."""
    fw = np.zeros((H, W, 2), np.float32)
    fw[..., 0] = SHIFT
    return float(np.mean([warping_error(a, b, fw, -fw) for a, b in zip(frames, frames[1:])]))


@pytest.fixture
def style(data_dir) -> str:
    return str(data_dir / "styles" / "starry_night.jpg")


def test_temporal_loss_cuts_flicker_at_equal_style(data_dir, style, random_vgg):
    """Same start (frame 1's result warped into frame 2), same budget; only γ differs (DESIGN 7).

    On a real clip with the engine's own flow (DIS): the temporal term cuts the warping error at
    least 3x while the style loss stays within 10 %. γ = 100: on the random net content and style
    are lifted 1000x (RANDOM_NET); measured here, γ = 100 gives 5x and +4 %, γ = 1000 35x and +20 %.
    """
    s = _settings(style, random_vgg, size=48).resolved()
    src = open_source(data_dir / "clips" / "sintel_raft_demo", frames=(1, 2), max_side=s.size)
    f0, f1 = src.read(0), src.read(1)
    src.close()
    stylist = quality.Stylist(s, "cpu")
    c0, c1 = to_tensor(f0.rgb), to_tensor(f1.rgb)
    out0 = to_array(stylist.run(c0, s.styles, c0, iterations=100, fresh=True).image)  # near converged
    ctx = SimpleNamespace(settings=s, device="cpu", flows=FlowEstimator("dis"), write_debug_masks=lambda *a: None)
    temporal, warped, _ = quality.tie(ctx, stylist, f1, c1, [(1, f0, out0)], loss=True)
    fw, bw = ctx.flows.pair(f0, f1)
    err, style_loss = {}, {}
    for gamma in (100.0, 0.0):
        stylist.weights = dataclasses.replace(stylist.weights, temporal=gamma)
        res = stylist.run(c1, s.styles, warped[1], iterations=12, temporal=temporal)
        err[gamma], style_loss[gamma] = warping_error(out0, to_array(res.image), fw, bw), res.parts["style"]
        assert ("temporal" in res.parts) == (gamma > 0)
    assert err[100.0] * 3 <= err[0.0], err
    assert abs(style_loss[100.0] - style_loss[0.0]) <= 0.1 * style_loss[0.0], style_loss


def test_long_term_ties_reappearing_content_to_its_last_sight(style, random_vgg, tmp_path, monkeypatch):
    """A patch hidden in frame 2 reappears in frame 3: with J = {1, 2, 4} frame 3 takes it from frame 1's
    result (c_long(1, 3) = 1 there, as c(2, 3) = 0), with J = {1} nothing ties it (Ruder et al. 2016, eq. 9).

    The scene is static; the flow is zero except where frame 2's occluder is, where forward and
    backward flow disagree, as they do at an occlusion, so the consistency check marks it.
    """
    tex = _texture(H, W, seed=2)
    ys, xs = slice(12, 28), slice(20, 40)
    hidden = tex.copy()
    hidden[ys, xs] = 0.15  # a dark occluder in frame 2 only
    clip = _write(tmp_path / "clip", [tex, hidden, tex])

    def flow(self, a, b):
        f = np.zeros(a.rgb.shape[:2] + (2,), np.float32)
        if 1 in (a.index, b.index) and a.index < b.index:  # pairs with frame 2: inconsistent over the occluder
            f[ys, xs, 0] = 6.0
        return f

    monkeypatch.setattr(flow_module.FlowEstimator, "flow", flow)
    s = _settings(style, random_vgg, iterations=10, iterations_first=16)
    gap = {}
    for name, J in (("short", (1,)), ("long", (1, 2, 4))):
        rep = flowstyle.stylize(clip, None, tmp_path / name, dataclasses.replace(s, long_term=J), debug=name == "long")
        out = _outputs(tmp_path / name)
        gap[name] = float(np.abs(out[2][ys, xs] - out[0][ys, xs]).mean())
        assert "temporal" in rep.frames[3]["loss"]
    assert gap["long"] * 3 < gap["short"], gap
    # --debug shows why (issue 16, item 5): frame 3's reliability mask to frame 2 is black over the
    # occluder, its mask to frame 1 white everywhere
    debug = tmp_path / "long" / "debug"
    assert sorted(p.name for p in debug.glob("*.png")) == ["mask_00002_j1.png", "mask_00003_j1.png", "mask_00003_j2.png"]
    to_2, to_1 = read_image(debug / "mask_00003_j1.png")[0][..., 0], read_image(debug / "mask_00003_j2.png")[0][..., 0]
    assert to_2[ys, xs].max() == 0.0 and to_2[:10].min() == 1.0
    assert to_1.min() == 1.0


class TestMultiPass:
    """Ruder et al. 2018, section 5.4, on the sliding clip (3 frames, 2 or 3 passes, a few iterations each)."""

    @pytest.fixture
    def clip(self, tmp_path, sliding_flow) -> Path:
        return _sliding(tmp_path / "clip", 3)

    def _run(self, clip, out, s) -> list:
        flowstyle.stylize(clip, None, out, s, debug=True)
        return _outputs(out)

    def test_blend_weight_and_direction(self, clip, style, random_vgg, tmp_path):
        """δ decides how much of the neighbour a frame starts from; the backward pass carries the last frame.

        Temporal loss off (from a pass that never comes), one iteration in pass 2: what pass 2 does is
        its start, δ · own + (1 − δ) · warped neighbour. Smaller δ: less flicker. With δ = 0 pass 2
        (backward, 3 -> 1) copies frame 3's pass-1 look onto frames 2 and 1, so frame 3 stays near its
        per-frame result and frame 1 moves far from its own.
        """
        s = _settings(style, random_vgg, passes=2, temporal_from_pass=3, iterations=2, iterations_first=16)
        per_frame = self._run(clip, tmp_path / "pf", dataclasses.replace(s, passes=1, init="content",
                                                                          temporal_weight=0.0, iterations_first=8))
        runs = {d: self._run(clip, tmp_path / f"d{d}", dataclasses.replace(s, blend=d)) for d in (0.0, 0.5, 1.0)}
        # --debug: the backward pass ties frames 2 and 1 to the later frames (negative offsets)
        assert sorted(p.name for p in (tmp_path / "d0.5" / "debug").glob("*.png")) == [
            "mask_00001_j-1.png", "mask_00001_j-2.png", "mask_00002_j-1.png"]
        flicker = {d: _flicker(out) for d, out in runs.items()}
        assert flicker[0.0] < 0.5 * flicker[0.5] and flicker[0.5] < 0.7 * flicker[1.0], flicker
        assert flicker[1.0] > 0.7 * _flicker(per_frame)  # δ = 1: no blend, the per-frame flicker stays
        moved = [float(np.abs(runs[0.0][k] - per_frame[k]).mean()) for k in range(3)]
        assert moved[2] * 3 < moved[0], moved  # the backward pass started at frame 3

    def test_temporal_loss_from_pass(self, clip, style, random_vgg, tmp_path):
        """The temporal loss from pass P: the earlier it starts, the steadier the result (δ = 1 isolates it)."""
        s = _settings(style, random_vgg, passes=3, blend=1.0, iterations=12, iterations_first=18)
        flicker, reports = {}, {}
        for p in (2, 3, 4):  # 4: never
            out = tmp_path / f"p{p}"
            reports[p] = flowstyle.stylize(clip, None, out, dataclasses.replace(s, temporal_from_pass=p))
            flicker[p] = _flicker(_outputs(out))
        assert flicker[2] < 0.8 * flicker[3] and flicker[3] < 0.5 * flicker[4], flicker
        assert "temporal" not in reports[4].frames[2]["loss"] and "temporal" in reports[3].frames[2]["loss"]
