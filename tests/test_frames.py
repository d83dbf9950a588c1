"""Frame sources and sinks: video, folders, patterns, ranges, sizes, bit depths, alpha."""
import cv2
import numpy as np
import pytest

from flowstyle import FlowstyleError
from flowstyle.io import fit_size, open_source, read_image, write_png


def make_frames(folder, n=4, size=(40, 30), channels=3, dtype=np.uint8, name="f_{:03d}.png"):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    hi = 65535 if dtype == np.uint16 else 255
    shape = (size[1], size[0]) if channels == 1 else (size[1], size[0], channels)
    for i in range(n):
        cv2.imwrite(str(folder / name.format(i + 1)), rng.integers(0, hi, shape, dtype=dtype))
    return folder


class TestSources:
    def test_folder_all_frames(self, tmp_path):
        src = open_source(make_frames(tmp_path / "clip", n=5))
        frames = list(src)
        assert len(src) == 5 and [f.index for f in frames] == list(range(5))
        assert frames[0].rgb.shape == (30, 40, 3) and frames[0].rgb.dtype == np.float32
        assert len({f.key for f in frames}) == 5

    def test_pattern_and_range(self, tmp_path):
        make_frames(tmp_path, n=6, name="shot_{:04d}.png")
        src = open_source(tmp_path / "shot_%04d.png", frames=(2, 4))
        assert len(src) == 3
        direct = read_image(tmp_path / "shot_0002.png")[0]
        assert np.allclose(src.read(0).rgb, direct)

    def test_natural_order(self, tmp_path):
        for i in (1, 2, 10):
            cv2.imwrite(str(tmp_path / f"f{i}.png"), np.full((16, 16, 3), i, np.uint8))
        values = [round(f.rgb[0, 0, 0] * 255) for f in open_source(tmp_path)]
        assert values == [1, 2, 10]

    def test_working_size_longest_side(self, tmp_path):
        src = open_source(make_frames(tmp_path / "c", size=(400, 100)), max_side=200)
        assert src.size == (200, 50) and src.read(0).rgb.shape == (50, 200, 3)
        assert fit_size(100, 50, 400) == (100, 50)  # never upscaled

    def test_video_real_clip(self, data_dir):
        src = open_source(data_dir / "clips" / "sintel_cave_2" / "sintel_cave_2_clean.mp4", frames=(3, 6), max_side=256)
        frames = list(src)
        assert len(frames) == 4 and frames[0].rgb.shape == (109, 256, 3)
        assert np.allclose(src.read(1).rgb, frames[1].rgb)  # random access agrees with streaming

    def test_gray_16bit_alpha(self, tmp_path):
        gray = open_source(make_frames(tmp_path / "g", channels=1)).read(0)
        assert gray.rgb.shape[2] == 3 and np.allclose(gray.rgb[..., 0], gray.rgb[..., 1]) and gray.alpha is None
        deep = open_source(make_frames(tmp_path / "d", dtype=np.uint16)).read(0)
        assert deep.bit_depth == 16 and 0 <= deep.rgb.min() and deep.rgb.max() <= 1
        rgba = open_source(make_frames(tmp_path / "a", channels=4)).read(0)
        assert rgba.alpha is not None and rgba.alpha.shape == (30, 40)

    def test_read_ahead_gives_the_frame_read_in_order(self, data_dir):
        path = data_dir / "clips" / "sintel_cave_2" / "sintel_cave_2_clean.mp4"
        plain = list(open_source(path, frames=(1, 6), max_side=128))
        src = open_source(path, frames=(1, 6), max_side=128)
        got = []
        for k in range(6):
            got.append(src.read(k))
            src.read_ahead(k + 1)  # decoded in a thread while frame k is worked on (past the end: nothing)
        src.close()
        assert [f.key for f in got] == [f.key for f in plain]  # the video reader's position shared right
        assert all(np.array_equal(f.rgb, g.rgb) for f, g in zip(got, plain))

    def test_a_damaged_frame_read_ahead_fails_where_it_is_read(self, tmp_path):
        make_frames(tmp_path, n=3)
        src = open_source(tmp_path)
        (tmp_path / "f_002.png").write_bytes(b"not a png")  # damaged after the clip was opened
        src.read_ahead(1)
        assert src.read(0).index == 0  # the read ahead's failure is not frame 0's
        with pytest.raises(FlowstyleError, match="cannot decode frame .*f_002.png"):
            src.read(1)
        src.close()

    def test_frames_stream(self, tmp_path):
        src = open_source(make_frames(tmp_path / "c", n=3))
        it = iter(src)
        assert next(it).index == 0  # a generator: nothing decoded ahead


class TestSourceErrors:
    def test_missing_input(self, tmp_path):
        with pytest.raises(FlowstyleError, match="does not exist"):
            open_source(tmp_path / "nope.mp4")

    def test_empty_folder(self, tmp_path):
        with pytest.raises(FlowstyleError, match="holds no image frames"):
            open_source(tmp_path)

    def test_corrupt_video(self, tmp_path):
        bad = tmp_path / "bad.mp4"
        bad.write_bytes(b"\x00" * 1000)
        with pytest.raises(FlowstyleError, match="cannot read video"):
            open_source(bad)

    def test_range_outside_clip(self, tmp_path):
        with pytest.raises(FlowstyleError, match="runs past the end"):
            open_source(make_frames(tmp_path / "c", n=3), frames=(2, 9))
        with pytest.raises(FlowstyleError, match="empty"):
            open_source(tmp_path / "c", frames=(3, 2))

    def test_mixed_sizes(self, tmp_path):
        make_frames(tmp_path, n=2)
        cv2.imwrite(str(tmp_path / "f_003.png"), np.zeros((10, 10, 3), np.uint8))
        src = open_source(tmp_path)
        with pytest.raises(FlowstyleError, match="must have one size"):
            list(src)

    def test_pattern_without_matches(self, tmp_path):
        with pytest.raises(FlowstyleError, match="no frames match"):
            open_source(tmp_path / "x_%04d.png")


class TestWritePng:
    def test_roundtrip_atomic(self, tmp_path):
        rgb = np.random.default_rng(1).random((12, 10, 3)).astype(np.float32)
        alpha = np.linspace(0, 1, 120, dtype=np.float32).reshape(12, 10)
        write_png(tmp_path / "x.png", rgb, alpha)
        back, a, depth = read_image(tmp_path / "x.png")
        assert depth == 8 and np.abs(back - rgb).max() <= 0.5 / 255 + 1e-6 and np.abs(a - alpha).max() <= 0.5 / 255 + 1e-6
        assert [p.name for p in tmp_path.iterdir()] == ["x.png"]  # no temp file left

    def test_16_bit(self, tmp_path):
        rgb = np.random.default_rng(2).random((6, 5, 3)).astype(np.float32)
        write_png(tmp_path / "x.png", rgb, bit_depth=16)
        back, _, depth = read_image(tmp_path / "x.png")
        assert depth == 16 and np.abs(back - rgb).max() < 1e-4

    def test_unwritable_folder(self, tmp_path):
        with pytest.raises(FlowstyleError, match="cannot write"):
            write_png(tmp_path / "missing" / "x.png", np.zeros((4, 4, 3), np.float32))
