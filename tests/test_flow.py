"""Optical flow backends and the on-disk cache (DESIGN 4.1)."""
import numpy as np
import pytest

from flowstyle.motion import flow as flowmod
from flowstyle import FlowstyleError
from flowstyle.motion.flow import FlowEstimator, flow_backend, read_flo
from flowstyle.motion.flow_cache import FlowCache
from flowstyle.io import Frame, read_image


def frame(rgb, i=0):
    import hashlib

    return Frame(i, rgb, None, 8, hashlib.md5(rgb.tobytes()).hexdigest())


def textured(h=96, w=128, seed=0):
    import cv2

    noise = np.random.default_rng(seed).random((h // 4, w // 4, 3)).astype(np.float32)
    return cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)


@pytest.mark.parametrize("backend", ["dis", "dis-fast", "deepflow"])
def test_backend_recovers_translation(backend):
    img = textured()
    moved = np.roll(img, (0, 3), axis=(0, 1))  # 3 px right
    f = flow_backend(backend)(img, moved)
    assert f.shape == (96, 128, 2) and f.dtype == np.float32
    centre = f[20:-20, 20:-20]
    assert np.median(centre[..., 0]) == pytest.approx(3.0, abs=0.3)
    assert np.median(centre[..., 1]) == pytest.approx(0.0, abs=0.3)


def test_unknown_backend_lists_valid():
    with pytest.raises(FlowstyleError, match="choose one of deepflow, dis, dis-fast"):
        flow_backend("raftish")


def test_cache_reused_across_estimators(tmp_path, monkeypatch):
    a, b = frame(textured(seed=1)), frame(textured(seed=2), 1)
    calls = []
    real = flowmod.FLOW_BACKENDS["dis"]
    monkeypatch.setitem(flowmod.FLOW_BACKENDS, "dis", lambda: (lambda x, y: (calls.append(1), real()(x, y))[1]))
    first = FlowEstimator("dis", FlowCache(tmp_path)).pair(a, b)
    again = FlowEstimator("dis", FlowCache(tmp_path)).pair(a, b)
    assert len(calls) == 2  # forward and backward once; the second estimator read both from disk
    assert np.allclose(first[0], again[0], atol=0.05) and np.allclose(first[1], again[1], atol=0.05)
    other = FlowEstimator("dis", FlowCache(tmp_path)).flow(b, frame(textured(seed=3), 2))
    assert len(calls) == 3 and other.shape == (96, 128, 2)


def test_dis_accuracy_on_ground_truth(data_dir):
    d = data_dir / "flow" / "middlebury-RubberWhale"
    a, b = read_image(d / "frame10.png")[0], read_image(d / "frame11.png")[0]
    gt = read_flo(d / "flow10.flo")
    known = (np.abs(gt) < 1e9).all(axis=2)
    epe = np.linalg.norm(flow_backend("dis")(a, b) - gt, axis=2)[known].mean()
    assert epe < 0.5


def test_read_flo_rejects_other_files(tmp_path):
    p = tmp_path / "x.flo"
    p.write_bytes(b"not a flow file")
    with pytest.raises(FlowstyleError, match="not a .flo file"):
        read_flo(p)


def test_raft_local_weights_and_clear_error_without_them(tmp_path, monkeypatch):
    import torch
    from torchvision.models.optical_flow import raft_small

    torch.manual_seed(0)
    path = tmp_path / "raft_small.pth"
    torch.save(raft_small(weights=None).state_dict(), path)
    img = textured(64, 72)
    f = flow_backend("raft", weights=str(path))(img, np.roll(img, 2, axis=1))
    assert f.shape == (64, 72, 2) and np.isfinite(f).all()  # random weights: mechanics only

    bad = tmp_path / "bad.pth"
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    with pytest.raises(FlowstyleError, match="not a torchvision RAFT state dict"):
        flow_backend("raft", weights=str(bad))

    import torchvision.models.optical_flow.raft as raft_mod

    def offline(*a, **k):
        raise OSError("no network")

    monkeypatch.setattr(raft_mod, "raft_large", offline)
    monkeypatch.setattr("torchvision.models.optical_flow.raft_large", offline)
    with pytest.raises(FlowstyleError, match="cannot download the RAFT weights .* --raft-weights"):
        flow_backend("raft")


def counting_dis(monkeypatch, calls, delay=0.0):
    """Make the ``dis`` backend count its calls, each taking ``delay`` s more."""
    import time

    real = flowmod.FLOW_BACKENDS["dis"]

    def build():
        fn = real()
        return lambda x, y: (calls.append(1), time.sleep(delay), fn(x, y))[2]
    monkeypatch.setitem(flowmod.FLOW_BACKENDS, "dis", build)


def test_prefetched_pair_is_computed_once_in_the_background(monkeypatch):
    a, b = frame(textured(seed=1)), frame(textured(seed=2), 1)
    calls = []
    counting_dis(monkeypatch, calls, delay=0.05)
    est = FlowEstimator("dis")
    est.prefetch(a, lambda: b)  # the second frame read in the background too
    got = est.pair(a, b)  # asked while the job runs: waits for it
    assert len(calls) == 2  # each direction once
    fresh = FlowEstimator("dis").pair(a, b)
    assert np.array_equal(got[0], fresh[0]) and np.array_equal(got[1], fresh[1])


def test_a_failed_prefetch_leaves_the_flow_to_be_asked_for(monkeypatch):
    a, b = frame(textured(seed=1)), frame(textured(seed=2), 1)
    est = FlowEstimator("dis")

    def damaged():
        raise FlowstyleError("cannot decode frame 'f2.png'")
    est.prefetch(a, damaged)
    est.settle()  # waits, and does not raise: the frame's own read raises where it is wanted
    assert est.flow(a, b).shape == (96, 128, 2)
