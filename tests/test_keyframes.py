"""Keyframe-style overrides (DESIGN 4.5, issue 5): style keys, painted frames, bad files."""
import json
import subprocess
import sys

import numpy as np
import pytest

import flowstyle
from flowstyle import FlowstyleError
from flowstyle.io import open_source, read_image, write_png
from flowstyle.keyframes import blend_styles, load_keyframes, parse_keyframes
from flowstyle.settings import Settings
from flowstyle.fast.magenta import MagentaStylizer
from flowstyle.io.styles import StyleRef

SIZE = 160


def psnr(a, b):
    return 10 * np.log10(1.0 / max(float(np.mean((a - b) ** 2)), 1e-12))


def frames_of(folder):
    return [read_image(p)[0] for p in sorted(folder.glob("frame_*.png"))]


@pytest.fixture
def whale(data_dir):
    return data_dir / "clips" / "middlebury_rubberwhale"


class TestTimeline:
    A, B = (StyleRef(builtin=1),), (StyleRef(builtin=2),)

    def timeline(self, interp, **extra):
        keys = [{"frame": 3, "style": "builtin:1", "interpolation": interp, **extra}, {"frame": 7, "style": "builtin:2"}]
        return parse_keyframes({"keys": keys}, 10, (StyleRef(builtin=9),), None)

    def test_base_style_before_first_key(self):
        assert self.timeline("linear").styles_at(0) == (StyleRef(builtin=9),)

    def test_linear_blends_weights(self):
        t = self.timeline("linear")
        mix = {s.builtin: s.weight for s in t.styles_at(4)}  # frame 5: halfway from frame 3 to 7
        assert mix == pytest.approx({1: 0.5, 2: 0.5})
        assert t.styles_at(6) == self.B and t.styles_at(9) == self.B

    def test_constant_holds_then_cuts(self):
        t = self.timeline("constant")
        assert t.styles_at(5) == self.A and t.styles_at(6) == self.B

    def test_smooth_eases(self):
        t = self.timeline("smooth")
        w = {s.builtin: s.weight for s in t.styles_at(3)}[2]  # a quarter of the way: smoothstep(0.25)
        assert w == pytest.approx(0.25 * 0.25 * (3 - 0.5))

    def test_weights_interpolate_and_default(self):
        t = self.timeline("linear", temporal_weight=3.0)
        assert t.weight_at(0, "temporal_weight", 1.0) == 1.0
        assert t.weight_at(2, "temporal_weight", 1.0) == 3.0
        assert t.weight_at(4, "temporal_weight", 1.0) == pytest.approx(2.0)

    def test_blend_styles_normalizes_each_mix(self):
        mix = blend_styles((StyleRef(builtin=1, weight=3.0),), (StyleRef(builtin=1), StyleRef(builtin=2)), 0.5)
        assert {s.builtin: s.weight for s in mix} == pytest.approx({1: 0.75, 2: 0.25})


BAD = [
    ('{"keys": [', "not valid JSON"),
    ('{"keys": [], "colour": 1}', "unknown field(s) colour"),
    ('{"keys": [{"frame": 1, "style": "builtin:1", "speed": 2}]}', "unknown field(s) speed"),
    ('{"keys": [{"frame": 0, "style": "builtin:1"}]}', "outside the stylized range 1-8"),
    ('{"keys": [{"frame": 99, "style": "builtin:1"}]}', "outside the stylized range 1-8"),
    ('{"keys": [{"frame": 2, "style": "nope.jpg"}]}', "cannot read style image"),
    ('{"keys": [{"frame": 2, "style": "builtin:1", "style_weight": "lots"}]}', "'style_weight' must be a number"),
    ('{"keys": [{"frame": 2, "style": "builtin:1:x"}]}', "builtin:0 to builtin:25"),
    ('{"keys": [{"frame": 2, "style": "builtin:1", "interpolation": "cubic"}]}', "is not one of constant, linear, smooth"),
    ('{"keys": [{"frame": "2", "style": "builtin:1"}]}', "'frame' must be a whole number"),
    ('{"overrides": [{"frame": 2, "image": "painted.png"}]}', "painted image"),
    ('[1, 2]', "top level must be an object"),
]


@pytest.mark.parametrize("text,needle", BAD)
def test_bad_keyframe_file_rejected_before_work(tmp_path, whale, text, needle):
    kf = tmp_path / "keys.json"
    kf.write_text(text)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "flowstyle", "stylize", str(whale), "--out", str(out), "--size", "64",
                           "--keyframes", str(kf)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and needle in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and str(kf) in proc.stderr
    assert not out.exists() or not list(out.glob("frame_*.png"))


def test_missing_keyframe_file(tmp_path, whale):
    with pytest.raises(FlowstyleError, match="not found: check the --keyframes path"):
        flowstyle.stylize(whale, "builtin:1", tmp_path, Settings(size=64, keyframes=str(tmp_path / "k.json")))


def test_painted_override_reproduced_and_propagated(tmp_path, whale):
    src = open_source(whale, max_side=SIZE)
    o = 4  # 0-based; the file says frame 5
    painted = MagentaStylizer([StyleRef(builtin=12)])(src.read(o).rgb)  # the artist's own version of frame 5
    write_png(tmp_path / "painted_0005.png", painted)
    (tmp_path / "keys.json").write_text(json.dumps({"overrides": [{"frame": 5, "image": "painted_0005.png"}]}))
    flowstyle.stylize(whale, "builtin:7", tmp_path / "plain", Settings(size=SIZE))
    flowstyle.stylize(whale, "builtin:7", tmp_path / "over", Settings(size=SIZE, keyframes=str(tmp_path / "keys.json")))
    plain, over = frames_of(tmp_path / "plain"), frames_of(tmp_path / "over")
    painted8 = read_image(tmp_path / "painted_0005.png")[0]
    assert psnr(over[o], painted8) >= 40
    for k in (o - 2, o - 1, o + 1, o + 2):  # neighbours on both sides move towards the painted look
        assert np.abs(over[k] - painted8).mean() < 0.8 * np.abs(plain[k] - painted8).mean(), k


def style_distance(st, img, refs):
    e = st.style_vector(img)
    return [float(np.linalg.norm(e - st.style_vector(r))) for r in refs]


def test_two_style_keys_dissolve(tmp_path, whale):
    keys = {"keys": [{"frame": 3, "style": "builtin:3", "interpolation": "linear"}, {"frame": 6, "style": "builtin:18"}]}
    flowstyle.stylize(whale, "builtin:3", tmp_path / "o", Settings(size=SIZE), keyframes=keys)
    out = frames_of(tmp_path / "o")
    src = open_source(whale, max_side=SIZE)
    a, b = MagentaStylizer([StyleRef(builtin=3)]), MagentaStylizer([StyleRef(builtin=18)])
    for k, closer in ((0, 0), (1, 0), (5, 1), (6, 1), (7, 1)):
        rgb = src.read(k).rgb
        d = style_distance(a, out[k], [a(rgb), b(rgb)])
        assert d[closer] < d[1 - closer], (k, d)


def test_linear_transition_flickers_less_than_a_cut(tmp_path, whale):
    """Warping error over frames 3-8 (key 2 -> key 7): the dissolve never pops like the cut does."""

    def errors(interp, temporal_weight):
        keys = {"keys": [{"frame": 2, "style": "builtin:3", "interpolation": interp}, {"frame": 7, "style": "builtin:18"}]}
        rep = flowstyle.stylize(whale, "builtin:3", tmp_path / f"{interp}{temporal_weight}",
                                Settings(size=SIZE, temporal_weight=temporal_weight), keyframes=keys)
        return np.array([rep.frames[i]["warping_error"] for i in range(3, 9)])

    assert errors("linear", None).max() < errors("constant", None).max()  # default settings: peak error
    assert errors("linear", 0.0).mean() < errors("constant", 0.0).mean()  # the dissolve alone: mean error


def test_a_dissolve_takes_strokes_from_the_new_style_not_the_past(tmp_path, whale, monkeypatch):
    """While the style mix changes, the past's strokes are the old style's: the solve is asked for none of
    them (carry 0) on exactly those frames, and for the settings' carry everywhere else."""
    import flowstyle.fast.run as run

    asked, solve = [], run.pcg_solve
    monkeypatch.setattr(run, "pcg_solve", lambda *a, **kw: asked.append(kw["carry"]) or solve(*a, **kw))
    keys = {"keys": [{"frame": 3, "style": "builtin:3", "interpolation": "linear"}, {"frame": 6, "style": "builtin:18"}]}
    flowstyle.stylize(whale, "builtin:3", tmp_path / "o", Settings(size=SIZE), keyframes=keys)
    timeline = parse_keyframes(keys, 8, (StyleRef(builtin=3),), None)
    expected = [0.0 if timeline.style_change(k) > 0 else 1.0 for k in range(1, 8)]  # frame 0 has no past
    assert asked == expected and 0.0 in expected and 1.0 in expected
