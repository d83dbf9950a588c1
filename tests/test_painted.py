"""Painted keyframes that hold through their stretch of the shot (issue 12, DESIGN 4.5)."""
import json

import cv2
import numpy as np
import pytest
import torch

import flowstyle
from flowstyle import FlowstyleError
from flowstyle.base.tensors import to_tensor
from flowstyle.fast.fill import ColourTable
from flowstyle.io import open_source, read_image, write_png
from flowstyle.io.frames import Frame
from flowstyle.keyframes import Override, parse_keyframes
from flowstyle.keyframes.painted import painted_styles, stretch_weights
from flowstyle.io.styles import StyleRef
from flowstyle.motion.anchor import AnchorTrack, identity_positions
from flowstyle.motion.flow import FlowEstimator
from flowstyle.motion.masks import consistency_mask
from flowstyle.motion.warp import warp
from flowstyle.settings import Settings

SIZE = 160


def repaint(rgb, seed=0, order=(2, 0, 1)):
    """An artist's repaint: 4-level palette, channels swapped, a few strokes. (H, W, 3) float."""
    rng = np.random.default_rng(seed)
    out = (np.floor(rgb[..., list(order)] * 3.999) / 3.0).astype(np.float32).copy()
    h, w = out.shape[:2]
    for _ in range(8):
        p0 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.line(out, p0, p1, tuple(float(c) for c in rng.integers(0, 4, 3) / 3.0), 3)
    return out


def frames_of(folder):
    return [read_image(p)[0] for p in sorted(folder.glob("frame_*.png"))]


# --- which painting decides where -------------------------------------------------------------

def ov(frame, strength=1.0, reach=None):
    return Override(frame, f"p{frame}.png", strength, reach)


def test_one_key_holds_the_whole_shot_both_ways():
    for k in (0, 3, 5, 9, 30):
        assert stretch_weights([ov(5)], k) == {0: 1.0}


def test_two_keys_dissolve_with_a_smoothstep():
    keys = [ov(2), ov(10)]
    shares = [stretch_weights(keys, k) for k in range(2, 11)]
    assert shares[0] == {0: 1.0} and shares[-1] == {1: 1.0}
    assert shares[4] == pytest.approx({0: 0.5, 1: 0.5})
    first = [s.get(0, 0.0) for s in shares]
    assert all(a > b for a, b in zip(first, first[1:]))  # the earlier key gives way frame by frame
    assert all(sum(s.values()) == pytest.approx(1.0) for s in shares)
    assert shares[1][0] > 1 - 1 / 8  # eased: the key holds longer near itself than a linear blend would


def test_strength_and_reach_scale_the_share():
    assert stretch_weights([ov(5, strength=0.4)], 8) == {0: pytest.approx(0.4)}
    assert stretch_weights([ov(5, strength=0.0)], 8) == {}
    reach = [stretch_weights([ov(10, reach=6)], 10 + d).get(0, 0.0) for d in range(0, 9)]
    assert reach[:6] == [1.0] * 6 and reach[6] == pytest.approx(0.5) and reach[7:] == [0.0, 0.0]
    assert stretch_weights([ov(10, reach=6)], 10 - 7) == {}  # both sides


def test_quality_mode_styles_take_the_paintings_in_by_share():
    base = (StyleRef(builtin=3),)
    keys = [ov(2), ov(10, strength=0.5)]
    weights = lambda k: {(r.builtin, r.image): round(r.weight, 6) for r in painted_styles(keys, k, base)}
    assert weights(0) == {(None, "p2.png"): 1.0}  # before and at a full-strength key: the painting alone
    assert weights(6) == {(3, None): 0.25, (None, "p2.png"): 0.5, (None, "p10.png"): 0.25}
    assert weights(12) == {(3, None): 0.5, (None, "p10.png"): 0.5}  # half strength: half the timeline's style
    assert painted_styles([], 5, base) == base


@pytest.mark.parametrize("entry, needle", [
    ({"strength": 1.5}, "'strength' must be a number from 0 to 1"),
    ({"strength": float("nan")}, "'strength' must be a number from 0 to 1"),
    ({"reach": 0}, "'reach' must be a whole number of frames of 1 or more"),
    ({"reach": 2.5}, "'reach' must be a whole number of frames of 1 or more"),
])
def test_bad_strength_or_reach_is_one_line(tmp_path, entry, needle):
    write_png(tmp_path / "p.png", np.zeros((8, 8, 3), np.float32))
    with pytest.raises(FlowstyleError, match=needle):
        parse_keyframes({"overrides": [{"frame": 2, "image": "p.png", **entry}]}, 5, (), tmp_path)


# --- the chain to the key ---------------------------------------------------------------------

class Shifted:
    """A clip whose frame k is a texture moved ``shift`` px right per frame: exact flows, with a
    ``bias`` px error on every step between neighbours (direct flows to far frames are exact)."""

    def __init__(self, n=24, h=48, w=96, shift=2.0, bias=0.0):
        rng = np.random.default_rng(1)
        self.texture = cv2.GaussianBlur(rng.random((h, w + 3 * n, 3)).astype(np.float32), (0, 0), 2)
        self.n, self.h, self.w, self.shift, self.bias = n, h, w, shift, bias
        self.seconds = 0.0

    def __len__(self):
        return self.n

    def read(self, k):
        x0 = int(round(3 * self.n - self.shift * k))
        rgb = np.ascontiguousarray(self.texture[:, x0:x0 + self.w])
        return Frame(k, rgb, None, 8, str(k))

    def pair(self, a, b):
        d = self.shift * (b.index - a.index) + (self.bias if abs(b.index - a.index) == 1 else 0.0)
        fw = np.zeros((self.h, self.w, 2), np.float32)
        fw[..., 0] = d
        return fw, -fw


@pytest.mark.parametrize("reanchor, bound", [(True, 1.5), (False, None)])
def test_chain_is_reanchored_to_the_key(reanchor, bound):
    clip = Shifted(bias=0.3)
    track = AnchorTrack(clip, clip, 0, device="cpu", reanchor=reanchor)
    for k in range(1, 21):
        positions, reliability = track.step(k)
    expected = identity_positions(clip.h, clip.w)[:, 0] - clip.shift * 20  # pixel x of frame 20 was at x − 40
    traced = reliability[:, 0] > 0.5
    error = float((positions[:, 0] - expected).abs()[traced].median())
    assert traced.float().mean() > 0.4  # what stays in view stays traced
    assert not bool(traced[..., :40].any())  # what entered the frame since the key is not
    if bound:
        assert error < bound  # the per-step bias (6 px over 20 steps) is held in check
    else:
        assert error > 4.0


def test_chain_backwards_before_the_key():
    clip = Shifted()
    track = AnchorTrack(clip, clip, 10, device="cpu")
    for k in range(9, 4, -1):
        positions, reliability = track.step(k)
    traced = reliability[:, 0] > 0.5
    expected = identity_positions(clip.h, clip.w)[:, 0] + clip.shift * 5
    assert float((positions[:, 0] - expected).abs()[traced].max()) < 0.05
    assert not bool(traced[..., -10:].any())
    with pytest.raises(ValueError):
        track.step(7)  # the walk only goes on, away from the key


# --- new pixels in the painting's look ----------------------------------------------------------

def test_colour_table_learns_the_painting_from_the_key_frame():
    rng = np.random.default_rng(3)
    key = cv2.GaussianBlur(rng.random((64, 64, 3)).astype(np.float32), (0, 0), 3)
    key = (key - key.min()) / (key.max() - key.min())
    paint = lambda x: np.floor(x[..., [1, 2, 0]] * 3.999) / 3.0  # 4 levels, channels swapped
    table = ColourTable(to_tensor(key), to_tensor(paint(key)))
    new = cv2.GaussianBlur(rng.random((64, 64, 3)).astype(np.float32), (0, 0), 3)  # other content, same colours
    new = (new - new.min()) / (new.max() - new.min())
    mapped = table(to_tensor(new))[0].permute(1, 2, 0).numpy()
    without = np.abs(new - paint(new)).mean()  # the new content's own colours
    assert np.abs(mapped - paint(new)).mean() < 0.3 * without, without


# --- the whole run on a real clip ---------------------------------------------------------------

@pytest.fixture
def whale(data_dir):
    return data_dir / "clips" / "middlebury_rubberwhale"


def carried_distance(src, outputs, painted, o, k, grader):
    """Mean |output k − painting carried from o to k| where the grader's flow is consistent (0-1 scale)."""
    fw, bw = grader.pair(src.read(o), src.read(k))
    mask = consistency_mask(to_tensor(fw), to_tensor(bw))
    diff = (to_tensor(outputs[k]) - warp(to_tensor(painted), to_tensor(bw))).abs().mean(1, keepdim=True)
    return float((diff * mask).sum() / mask.sum())


def paint_key(tmp_path, clip, o, name="painted.png", **kw):
    src = open_source(clip, max_side=SIZE)
    write_png(tmp_path / name, repaint(src.read(o).rgb, **kw))
    return read_image(tmp_path / name)[0]


def test_painted_key_holds_through_the_shot(tmp_path, whale):
    o = 4
    painted = paint_key(tmp_path, whale, o)
    keys = {"overrides": [{"frame": o + 1, "image": str(tmp_path / "painted.png")}]}
    settings = Settings(size=SIZE)
    flowstyle.stylize(whale, "builtin:7", tmp_path / "plain", settings)
    flowstyle.stylize(whale, "builtin:7", tmp_path / "over", settings, keyframes=keys)
    plain, over = frames_of(tmp_path / "plain"), frames_of(tmp_path / "over")
    assert np.abs(over[o] - painted).max() < 1 / 255 + 1e-6  # the painted frame itself, exactly
    src, grader = open_source(whale, max_side=SIZE), FlowEstimator("deepflow")  # graded with a flow the run did not use
    for k in (0, 1, 7):  # 3 and 4 frames away, both sides
        held = carried_distance(src, over, painted, o, k, grader)
        without = carried_distance(src, plain, painted, o, k, grader)
        assert held < 0.25 * without and held < 0.06, (k, held, without)


def test_two_painted_keys_dissolve(tmp_path, whale):
    a, b = 1, 6
    pa = paint_key(tmp_path, whale, a, "a.png", seed=1, order=(2, 0, 1))
    pb = paint_key(tmp_path, whale, b, "b.png", seed=2, order=(1, 2, 0))
    keys = {"overrides": [{"frame": a + 1, "image": str(tmp_path / "a.png")}, {"frame": b + 1, "image": str(tmp_path / "b.png")}]}
    flowstyle.stylize(whale, "builtin:7", tmp_path / "o", Settings(size=SIZE), keyframes=keys)
    out = frames_of(tmp_path / "o")
    src, grader = open_source(whale, max_side=SIZE), FlowEstimator("deepflow")
    to_a = [carried_distance(src, out, pa, a, k, grader) for k in range(a, b + 1)]
    to_b = [carried_distance(src, out, pb, b, k, grader) for k in range(a, b + 1)]
    assert to_a[0] < 0.01 and to_b[-1] < 0.01
    assert all(x < y for x, y in zip(to_a, to_a[1:])), to_a  # away from a, frame by frame
    assert all(x > y for x, y in zip(to_b, to_b[1:])), to_b  # towards b
    assert to_a[1] < to_b[1] and to_b[-2] < to_a[-2]


def test_strength_and_reach_are_honoured(tmp_path, whale):
    o = 2
    painted = paint_key(tmp_path, whale, o)
    settings = Settings(size=SIZE)
    runs = {}
    for name, extra in (("plain", None), ("zero", {"strength": 0}), ("half", {"strength": 0.5}), ("full", {}),
                        ("reach1", {"reach": 1})):
        keys = None if extra is None else {"overrides": [{"frame": o + 1, "image": str(tmp_path / "painted.png"), **extra}]}
        flowstyle.stylize(whale, "builtin:7", tmp_path / name, settings, keyframes=keys)
        runs[name] = frames_of(tmp_path / name)
    assert all(np.array_equal(x, y) for x, y in zip(runs["zero"], runs["plain"]))  # strength 0 is no override
    far = lambda run: np.abs(runs[run][7] - runs["full"][7]).mean()  # 5 frames after the key, against the held look
    d = {run: np.abs(runs[run][o] - painted).mean() for run in ("plain", "half", "full")}
    assert d["full"] < 1e-3 < d["half"] < 0.75 * d["plain"]  # half strength: between the network and the painting
    assert far("reach1") > 0.5 * far("plain")  # past its reach the painting lets go


def test_with_stroke_sources_the_painting_lets_go_past_its_reach(tmp_path, whale):
    """Stroke sources would hold the painting's strokes for as long as the scene is traced: after the reach
    they start again from the network's strokes."""
    o = 2
    paint_key(tmp_path, whale, o)
    settings = Settings(size=SIZE, stroke_sources=8, fidelity_weight=0.1)
    runs = {}
    for name, extra in (("plain", None), ("full", {}), ("reach1", {"reach": 1})):
        keys = None if extra is None else {"overrides": [{"frame": o + 1, "image": str(tmp_path / "painted.png"), **extra}]}
        flowstyle.stylize(whale, "builtin:7", tmp_path / name, settings, keyframes=keys)
        runs[name] = frames_of(tmp_path / name)
    far = lambda run: np.abs(runs[run][7] - runs["full"][7]).mean()
    assert far("reach1") > 0.5 * far("plain")


def test_preview_shows_the_painted_look(tmp_path, whale):
    o = 4
    painted = paint_key(tmp_path, whale, o)
    keys = {"overrides": [{"frame": o + 1, "image": str(tmp_path / "painted.png")}]}
    settings = Settings(size=SIZE)
    flowstyle.stylize(whale, "builtin:7", tmp_path / "run", settings, keyframes=keys)
    run = frames_of(tmp_path / "run")
    previews = {}
    for k in (o, o + 3):
        for name, kf in (("key", keys), ("none", None)):
            flowstyle.stylize(whale, "builtin:7", tmp_path / f"{name}{k}", settings, keyframes=kf, preview=k + 1)
            previews[name, k] = read_image(tmp_path / f"{name}{k}" / "preview.png")[0]
    assert np.abs(previews["key", o] - painted).max() < 1 / 255 + 1e-6  # at the key: the painting
    # three frames on: what the render shows there, not the network's own look
    assert np.abs(previews["key", o + 3] - run[o + 3]).mean() < 0.5 * np.abs(previews["none", o + 3] - run[o + 3]).mean()


def test_a_painted_key_decodes_no_frame_again_after_the_key(tmp_path, whale, monkeypatch):
    """The key's walk reads the frame the main loop has in hand: it is not decoded a second time."""
    from collections import Counter
    from flowstyle.io.frames import FrameSource

    decoded, real = Counter(), FrameSource._decode

    def counting(self, native_index):
        decoded[native_index] += 1
        return real(self, native_index)

    monkeypatch.setattr(FrameSource, "_decode", counting)
    o = 2
    paint_key(tmp_path, whale, o)
    flowstyle.stylize(whale, "builtin:7", tmp_path / "plain", Settings(size=SIZE))
    plain = Counter(decoded)
    decoded.clear()
    keys = {"overrides": [{"frame": o + 1, "image": str(tmp_path / "painted.png")}]}
    flowstyle.stylize(whale, "builtin:7", tmp_path / "over", Settings(size=SIZE), keyframes=keys)
    after = sorted(i for i in plain if i > o)
    assert after and [decoded[i] for i in after] == [plain[i] for i in after], (dict(decoded), dict(plain))
