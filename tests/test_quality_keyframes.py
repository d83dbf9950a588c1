"""Painted overrides and style keys in quality mode (issue 5, both modes), with seeded random VGG weights."""
import json

import cv2
import numpy as np
import pytest
import torch

import flowstyle
from flowstyle.io import open_source, read_image, write_png

SIZE = 64


@pytest.fixture(scope="module")
def vgg_path(tmp_path_factory):
    import torchvision

    torch.manual_seed(0)
    sd = torchvision.models.vgg19().state_dict()
    path = tmp_path_factory.mktemp("vgg") / "vgg19_random.pth"
    torch.save({k: v for k, v in sd.items() if k.startswith("features.") and int(k.split(".")[1]) <= 28}, path)
    return path


def settings(vgg_path, data_dir, **kw):
    return flowstyle.Settings(mode="quality", size=SIZE, frames=(1, 4), iterations=6, iterations_first=10,
                              vgg_weights=str(vgg_path), device="cpu",
                              styles=(flowstyle.StyleRef(image=str(data_dir / "styles" / "starry_night.jpg")),), **kw)


def frames_of(folder):
    return [read_image(p)[0] for p in sorted(folder.glob("frame_*.png"))]


@pytest.mark.parametrize("passes", [1])
def test_painted_override_in_quality_mode(tmp_path, data_dir, vgg_path, passes):
    clip = data_dir / "clips" / "middlebury_rubberwhale"
    src = open_source(clip, frames=(1, 4), max_side=SIZE)
    painted = 1.0 - src.read(2).rgb  # an unmistakable hand-made frame 3: the negative
    write_png(tmp_path / "paint.png", painted)
    keys = {"overrides": [{"frame": 3, "image": str(tmp_path / "paint.png")}]}
    flowstyle.stylize(clip, None, tmp_path / "plain", settings(vgg_path, data_dir, passes=passes))
    flowstyle.stylize(clip, None, tmp_path / "over", settings(vgg_path, data_dir, passes=passes), keyframes=keys)
    plain, over = frames_of(tmp_path / "plain"), frames_of(tmp_path / "over")
    target = read_image(tmp_path / "paint.png")[0]
    assert 10 * np.log10(1 / max(np.mean((over[2] - target) ** 2), 1e-12)) >= 40
    for k in (1, 3):  # the neighbours before and after move towards the painted look
        assert np.abs(over[k] - target).mean() < np.abs(plain[k] - target).mean()


def test_per_key_weights_in_quality_mode(tmp_path, data_dir, vgg_path):
    """A key with style_weight 0 from frame 3 on: the frames before it are untouched, and from it on the
    frames carry less of the painting's style (Gram statistics farther from it) than without the key.

    The sharpness term is off: with random VGG weights it dominates the loss, and the key's effect on
    the output was then a few 1/255 steps, below the noise of thread counts."""
    from flowstyle.quality.losses import STYLE_LAYERS, gram_matrix
    from flowstyle.quality.vgg import vgg19_features

    clip = data_dir / "clips" / "middlebury_rubberwhale"
    keys = {"keys": [{"frame": 3, "style_weight": 0, "temporal_weight": 0}]}
    flowstyle.stylize(clip, None, tmp_path / "plain", settings(vgg_path, data_dir, sharpness_weight=0.0))
    flowstyle.stylize(clip, None, tmp_path / "keyed", settings(vgg_path, data_dir, sharpness_weight=0.0),
                      keyframes=keys)
    plain, keyed = frames_of(tmp_path / "plain"), frames_of(tmp_path / "keyed")
    assert np.array_equal(plain[0], keyed[0]) and np.array_equal(plain[1], keyed[1])  # before the key

    net = vgg19_features(weights=str(vgg_path))

    def grams(rgb):
        with torch.no_grad():
            out = net(torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None])
        return [gram_matrix(getattr(out, layer)) for layer in STYLE_LAYERS]

    painting = read_image(data_dir / "styles" / "starry_night.jpg")[0]
    target = grams(cv2.resize(painting, (round(SIZE * painting.shape[1] / painting.shape[0]), SIZE),
                              interpolation=cv2.INTER_AREA))

    def style_distance(rgb):
        return sum(float((g - t).square().mean()) for g, t in zip(grams(rgb), target))

    for k in (2, 3):
        assert style_distance(keyed[k]) > 1.03 * style_distance(plain[k])
