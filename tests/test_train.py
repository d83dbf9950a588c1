"""``flowstyle train`` and ``--stylizer`` (issue 17): exact known-motion pairs, a recurrent network that starts as
the shipped one, a temporal loss that falls, a file that round-trips, bad files refused in one line, fast mode
running a trained network. Tiny synthetic images (no shared data needed); speed is bench/video_network.py's job."""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch

import flowstyle
from flowstyle import FlowstyleError
from flowstyle.base.errors import Cancelled
from flowstyle.cli import main
from flowstyle.fast.video_net import (VideoStylizer, build_network, first_conv, load_video_network,
                                      save_video_network, shipped_network)
from flowstyle.io import read_image
from flowstyle.motion.warp import warp
from flowstyle.train import TrainSettings
from flowstyle.train.data import TrainingData
from flowstyle.train.loop import checkpoint_path, train
from flowstyle.train.losses import video_losses
from flowstyle.train.pairs import known_motion, margin_for

ONE_HOT_7 = torch.eye(26)[7]


def texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth random colour texture, (H, W, 3) float32 in [0, 1]."""
    noise = rng.random((h // 4, w // 4, 3)).astype(np.float32)
    return np.clip(cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1)


def write(path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), (rgb[..., ::-1] * 255).round().astype(np.uint8))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Stills and one real pair (a 2-px pan) in a temporary folder."""
    root = tmp_path_factory.mktemp("train_data")
    rng = np.random.default_rng(0)
    for i in range(3):
        write(root / "stills" / f"still_{i}.png", texture(rng, 96, 128))
    big = texture(rng, 96, 140)
    write(root / "pairs" / "pan" / "frame_1.png", big[:, :128])
    write(root / "pairs" / "pan" / "frame_2.png", big[:, 2:130])
    return root


def tiny(data, **change) -> TrainSettings:
    return dataclasses.replace(TrainSettings(images=(str(data / "stills"),), pairs=(str(data / "pairs"),), size=48,
                                             batch=2, steps=2, device="cpu", checkpoint_every=1), **change)


class TestKnownMotion:
    @pytest.mark.parametrize("with_patch", [False, True])
    def test_warping_the_first_frame_by_the_flow_gives_the_second_where_the_mask_is_one(self, with_patch):
        rng = np.random.default_rng(3)
        canvas = torch.from_numpy(texture(rng, 64 + 2 * margin_for(64, 5.0), 64 + 2 * margin_for(64, 5.0)))
        patch = torch.from_numpy(texture(rng, 16, 16)).permute(2, 0, 1)[None] if with_patch else None
        pair = known_motion(canvas.permute(2, 0, 1)[None], 64, rng, max_shift=5.0, patch=patch)
        assert pair.flow_bw.abs().max() > 0.5  # it moved
        assert 0.3 < float(pair.mask.mean()) < 1.0  # some pixels left the frame (or were uncovered), most did not
        diff = (warp(pair.first, pair.flow_bw) - pair.second).abs().amax(1, keepdim=True)
        assert float((diff * pair.mask).max()) < 1e-4
        assert float(diff[pair.mask == 0].max()) > 1e-3  # the mask is not merely cautious: it removes real misses

    def test_the_patch_uncovers_background(self):
        image = torch.from_numpy(texture(np.random.default_rng(5), 64, 64)).permute(2, 0, 1)[None]
        plain = known_motion(image, 48, np.random.default_rng(7), max_shift=2.0)
        pasted = known_motion(image, 48, np.random.default_rng(7), max_shift=2.0, patch=torch.ones(1, 3, 12, 12))
        own_flow = (pasted.flow_bw - plain.flow_bw).abs().sum(1) > 0
        assert int(own_flow.sum()) == 12 * 12  # the patch moves on its own
        uncovered = (plain.mask - pasted.mask).clamp(min=0)
        assert 0 < float(uncovered.sum()) < 12 * 12  # the strip it uncovered (where its whole-pixel shift was)


class TestNetworks:
    @pytest.mark.parametrize("base, condition", [("multistyle26", ONE_HOT_7), ("arbitrary_transform", torch.randn(1, 100))])
    def test_recurrent_network_before_training_is_the_shipped_network(self, base, condition):
        torch.manual_seed(0)
        frame, previous = torch.rand(1, 3, 32, 48), torch.rand(1, 4, 32, 48)
        with torch.no_grad():
            shipped = shipped_network(base)(frame, condition)
            recurrent = build_network(base, "recurrent")(torch.cat([frame, previous], 1), condition)
        assert first_conv(build_network(base, "recurrent")).weight.shape[1] == 7
        torch.testing.assert_close(recurrent, shipped, atol=1e-5, rtol=0)

    def test_saved_file_round_trips(self, tmp_path):
        net = build_network("multistyle26", "recurrent")
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.01 * torch.randn_like(p))
        header = {"variant": "recurrent", "base": "multistyle26", "style": "builtin:7",
                  "condition": ONE_HOT_7.tolist(), "training": {"steps": 1}, "steps": 1}
        save_video_network(tmp_path / "n.pt", net, header)
        read_header, loaded = load_video_network(tmp_path / "n.pt")
        assert read_header["training"] == {"steps": 1} and read_header["version"] == 1
        x = torch.rand(1, 7, 32, 32)
        with torch.no_grad():
            torch.testing.assert_close(loaded(x, ONE_HOT_7), net(x, ONE_HOT_7), atol=0, rtol=0)


def interrupt_at(stop: int):
    """An ``on_step`` that stops training after step ``stop``, as Ctrl+C would."""
    def on_step(step: int, values: dict) -> None:
        if step == stop:
            raise KeyboardInterrupt
    return on_step


class TestTraining:
    def test_temporal_loss_falls(self, data, tmp_path):
        s = tiny(data, steps=25, lr=1e-3, temporal_weight=50.0, luminance_weight=0.0, ramp=0)
        header = train(s, tmp_path / "net.pt", progress=False)
        assert header["steps"] == 25
        _, trained = load_video_network(tmp_path / "net.pt")
        shipped = shipped_network("multistyle26")
        batch = TrainingData(s.images, s.pairs, (), 48).batch(np.random.default_rng(99), 6, real_share=0.3,
                                                              patch_share=0.5)
        with torch.no_grad():
            before = video_losses(shipped, shipped, batch, ONE_HOT_7, recurrent=False)
            after = video_losses(trained, shipped, batch, ONE_HOT_7, recurrent=False)
        assert float(before["distill"]) == 0.0
        assert float(after["temporal"]) < 0.8 * float(before["temporal"])

    def test_same_seed_same_network_and_resume_continues_the_same_run(self, data, tmp_path):
        s = tiny(data, steps=4, checkpoint_every=2, variant="recurrent")
        train(s, tmp_path / "a.pt", progress=False)

        calls = iter(range(100))
        with pytest.raises(Cancelled):  # Ctrl+C in the CLI: stops before step 4, after writing the checkpoint
            train(s, tmp_path / "b.pt", progress=False, cancel=lambda: next(calls) == 3)
        assert torch.load(checkpoint_path(tmp_path / "b.pt"), weights_only=True)["header"]["steps"] == 3
        train(s, tmp_path / "b.pt", resume=True, progress=False)
        assert not checkpoint_path(tmp_path / "b.pt").exists()
        a, b = (torch.load(tmp_path / n, weights_only=True)["state_dict"] for n in ("a.pt", "b.pt"))
        for k in a:
            torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=0)

    def test_resume_with_other_settings_is_refused(self, data, tmp_path):
        s = tiny(data, steps=3, checkpoint_every=1)
        with pytest.raises(KeyboardInterrupt):
            train(s, tmp_path / "n.pt", progress=False, on_step=interrupt_at(2))
        with pytest.raises(FlowstyleError, match="other training settings"):
            train(dataclasses.replace(s, lr=1e-3), tmp_path / "n.pt", resume=True, progress=False)

    def test_init_trains_on_from_a_file_of_the_same_kind(self, data, tmp_path):
        first = train(tiny(data, steps=1, batch=1), tmp_path / "a.pt", progress=False)
        train(tiny(data, steps=1, batch=1, init=str(tmp_path / "a.pt")), tmp_path / "b.pt", progress=False)
        a, b = (load_video_network(tmp_path / n)[1].state_dict() for n in ("a.pt", "b.pt"))
        shipped = shipped_network("multistyle26").state_dict()
        key = "contract.conv1.conv.weight"
        assert first["steps"] == 1 and not torch.equal(a[key], b[key]) and not torch.equal(a[key], shipped[key])
        with pytest.raises(FlowstyleError, match="is a stable network for builtin:7"):
            train(tiny(data, steps=1, variant="recurrent", init=str(tmp_path / "a.pt")), tmp_path / "c.pt",
                  progress=False)

    def test_vgg_weights_add_the_perceptual_losses(self, data, tmp_path, random_vgg):
        seen = []
        train(tiny(data, steps=1, batch=1, vgg_weights=str(random_vgg)), tmp_path / "n.pt", progress=False,
              on_step=lambda step, values: seen.append(values))
        assert {"content", "style", "distill", "temporal"} <= set(seen[0])
        assert all(np.isfinite(v) for v in seen[0].values()) and seen[0]["style"] > 0

    def test_cli_trains_a_file_the_engine_loads(self, data, tmp_path, capsys):
        out = tmp_path / "cli.pt"
        code = main(["train", "--style", "builtin:3", "--images", str(data / "stills"), "--size", "32", "--steps", "1",
                     "--batch", "1", "--device", "cpu", "--out", str(out)])
        assert code == 0, capsys.readouterr().err
        header, _ = load_video_network(out)
        assert (header["style"], header["variant"], header["base"]) == ("builtin:3", "stable", "multistyle26")

    def test_no_training_images_is_one_line(self, tmp_path, capsys):
        assert main(["train", "--out", str(tmp_path / "n.pt")]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--images" in err[0]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """Four 48x64 frames of a texture panning 2 px a frame."""
    root = tmp_path_factory.mktemp("clip")
    big = texture(np.random.default_rng(1), 48, 80)
    for k in range(4):
        write(root / "in" / f"f_{k + 1:02d}.png", big[:, 2 * k:2 * k + 64])
    return root / "in"


def save(path, variant: str, *, touch_extra: bool = False, retrain: bool = False) -> str:
    net = build_network("multistyle26", variant)
    with torch.no_grad():
        if touch_extra:  # the recurrent channels read something
            first_conv(net).weight[:, 3:] = 0.05
        if retrain:  # a network that no longer draws what the shipped one draws
            first_conv(net).weight[:, :3] *= -1.5
    save_video_network(path, net, {"variant": variant, "base": "multistyle26", "style": "builtin:7",
                                   "condition": ONE_HOT_7.tolist(), "training": {}, "steps": 0})
    return str(path)


def frames(folder) -> list[np.ndarray]:
    return [read_image(p)[0] for p in sorted(folder.glob("frame_*.png"))]


class TestFastModeWithStylizer:
    def test_runs_end_to_end_and_untrained_networks_match_the_shipped_one(self, clip, tmp_path):
        per_frame = dict(size=None, device="cpu", temporal_weight=0.0)
        flowstyle.stylize(clip, "builtin:7", tmp_path / "shipped", flowstyle.Settings(**per_frame))
        for variant in ("stable", "recurrent"):
            path = save(tmp_path / f"{variant}.pt", variant)
            flowstyle.stylize(clip, None, tmp_path / variant, flowstyle.Settings(**per_frame, stylizer=path))
            for a, b in zip(frames(tmp_path / "shipped"), frames(tmp_path / variant), strict=True):
                assert np.abs(a - b).max() <= 1 / 255
        report = flowstyle.stylize(clip, None, tmp_path / "solve", flowstyle.Settings(size=None, device="cpu",
                                                                                      stylizer=path))
        assert report.status == "ok" and len(frames(tmp_path / "solve")) == 4

    def test_recurrent_network_reads_the_warped_previous_output(self, clip, tmp_path, monkeypatch):
        path = save(tmp_path / "r.pt", "recurrent", touch_extra=True)
        settings = flowstyle.Settings(size=None, device="cpu", temporal_weight=0.0, stylizer=path)
        seen, batch = [], VideoStylizer.batch
        monkeypatch.setattr(VideoStylizer, "batch", lambda self, f, previous=None: seen.append(previous) or
                            batch(self, f, previous))
        flowstyle.stylize(clip, None, tmp_path / "run", settings)
        monkeypatch.undo()
        out = frames(tmp_path / "run")
        assert seen[0] is None and all(p is not None for p in seen[1:])
        for k, previous in enumerate(seen[1:], 1):  # the previous output moved 2 px left; new content has mask 0
            mask = previous[0, 3]
            assert set(mask.unique().tolist()) == {0.0, 1.0} and float(mask[:, -2:].max()) == 0.0
            assert float(mask.mean()) > 0.6
            moved = torch.from_numpy(out[k - 1]).permute(2, 0, 1)[:, :, 2:]  # output k-1 where frame k sees it
            unmoved = torch.from_numpy(out[k - 1]).permute(2, 0, 1)[:, :, :-2]
            traced = mask[:, :-2] == 1
            warped, still = ((previous[0, :3, :, :-2] - o).abs().mean(0)[traced].mean() for o in (moved, unmoved))
            assert float(warped) < 0.5 * float(still)
        stylizer = VideoStylizer(path)
        alone = [stylizer(read_image(p)[0]) for p in sorted(clip.glob("*.png"))]  # zeros for the previous output
        assert np.abs(out[0] - alone[0]).max() <= 1 / 255  # the first frame has no previous output
        assert all(np.abs(o - a).max() > 0.02 for o, a in zip(out[1:], alone[1:]))

    def test_compare_perframe_runs_the_trained_network(self, clip, tmp_path):
        """--compare-perframe measures the network the run used (here without the solve, so the two agree)."""
        path = save(tmp_path / "retrained.pt", "stable", retrain=True)
        settings = flowstyle.Settings(size=None, device="cpu", temporal_weight=0.0, stylizer=path)
        report = flowstyle.stylize(clip, None, tmp_path / "run", settings, compare_perframe=True).to_dict()
        later = [report["frames"][str(k)] for k in range(2, 5)]
        for f in later:
            assert f["warping_error_perframe"] == pytest.approx(f["warping_error"], rel=1e-3)  # shipped: 2.5x

    @pytest.mark.parametrize("content, expect", [
        (None, "does not exist"),
        (b"not a torch file", "is not a flowstyle video network"),
        ({"header": {"format": "something-else"}, "state_dict": {}}, "is not a flowstyle video network"),
        ({"header": {"format": "flowstyle-video-network", "version": 99}, "state_dict": {}}, "format version 99"),
        ({"header": {"format": "flowstyle-video-network", "version": 1, "variant": "stable", "base": "multistyle26",
                     "condition": [0.0] * 26}, "state_dict": {"x": torch.zeros(1)}}, "does not fit"),
    ], ids=["missing", "garbage", "foreign", "newer", "mismatched"])
    def test_a_bad_file_is_refused_in_one_line(self, clip, tmp_path, capsys, content, expect):
        bad = tmp_path / "bad.pt"
        if isinstance(content, bytes):
            bad.write_bytes(content)
        elif content is not None:
            torch.save(content, bad)
        code = main(["stylize", str(clip), "--out", str(tmp_path / "o"), "--stylizer", str(bad), "--device", "cpu"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 1 and len(err) == 1, err
        assert "--stylizer" in err[0] and expect in err[0] and str(bad) in err[0]
        assert "Traceback" not in err[0]

    def test_style_keys_with_a_stylizer_are_refused_before_the_first_frame(self, clip, tmp_path):
        keys = {"keys": [{"frame": 2, "style": "builtin:3"}]}
        with pytest.raises(FlowstyleError, match="runs one trained style"):
            flowstyle.stylize(clip, None, tmp_path / "o", flowstyle.Settings(size=None, device="cpu",
                              stylizer=save(tmp_path / "s.pt", "stable")), keyframes=keys)
        assert not (tmp_path / "o").exists()

    def test_a_retrained_file_changes_the_resume_fingerprint(self, tmp_path):
        path = save(tmp_path / "s.pt", "stable")
        before = flowstyle.Settings(stylizer=path).fingerprint()
        save(tmp_path / "s.pt", "recurrent")
        assert flowstyle.Settings(stylizer=path).fingerprint() != before

    def test_quality_mode_refuses_a_stylizer(self, tmp_path):
        with pytest.raises(FlowstyleError, match="fast-mode network"):
            flowstyle.Settings(mode="quality", stylizer=save(tmp_path / "s.pt", "stable")).resolved()
