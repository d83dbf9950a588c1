"""The offline Gram style loss of ``flowstyle train`` (the style predictor's features; issue 17)."""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch

from flowstyle.fast.video_net import load_video_network, shipped_network
from flowstyle.train import TrainSettings
from flowstyle.train.data import TrainingData
from flowstyle.train.loop import train
from flowstyle.train.losses import video_losses
from flowstyle.train.predictor_style import LAYERS, PredictorGram, predictor_features
from test_train import ONE_HOT_7, data, texture  # noqa: F401 (data: the stills-and-pair fixture)


def coarse(rng: np.random.Generator, h: int, w: int, factor: int) -> np.ndarray:
    """A texture ``factor`` times coarser than :func:`texture`'s, (H, W, 3)."""
    return cv2.resize(texture(rng, h // factor, w // factor), (w, h), interpolation=cv2.INTER_CUBIC)


def as_batch(*images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


@pytest.fixture(scope="module")
def gram() -> PredictorGram:
    return PredictorGram()


class TestPredictorGram:
    def test_features_of_the_four_stages(self, gram):
        feats = predictor_features(gram.net, torch.rand(2, 3, 64, 64))
        assert [tuple(f.shape) for f in feats] == [(2, 16, 32, 32), (2, 24, 16, 16), (2, 32, 8, 8), (2, 64, 4, 4)]
        assert len(LAYERS) == 4

    def test_zero_when_output_is_target_and_positive_otherwise(self, gram):
        rng = np.random.default_rng(1)
        a, b = texture(rng, 64, 64), coarse(rng, 64, 64, 4)  # fine vs coarse texture
        target = as_batch(a, a)
        assert float(gram(target.clone(), target)) == 0.0
        assert float(gram(as_batch(b, b), target)) > 0.05
        blurred = as_batch(*(cv2.GaussianBlur(a, (0, 0), 2.0) for _ in range(2)))
        assert float(gram(blurred, target)) > 0.01

    def test_gradient_steps_on_an_image_lower_it(self):
        net = shipped_network("arbitrary_predict").requires_grad_(True)
        gram = PredictorGram(net)
        rng = np.random.default_rng(2)
        target = as_batch(texture(rng, 48, 48))
        x = as_batch(coarse(rng, 48, 48, 3)).requires_grad_(True)
        opt = torch.optim.Adam([x], lr=0.02)
        values = []
        for _ in range(30):
            loss = gram(x, target)
            values.append(float(loss.detach()))
            opt.zero_grad()
            loss.backward()
            opt.step()
        assert values[-1] < 0.5 * values[0]
        assert net.conv.weight.grad is None  # the predictor stays frozen

    @pytest.mark.parametrize("layers, shapes, match", [
        (("expanded_conv", "Conv_1"), ((1, 3, 32, 32),) * 2, "blocks of the predictor"),
        (LAYERS, ((1, 3, 32, 32), (1, 3, 64, 64)), "one shape"),
    ])
    def test_exception(self, gram, layers, shapes, match):
        with pytest.raises(ValueError, match=match):
            PredictorGram(gram.net, layers)(*(torch.rand(s) for s in shapes))


class TestTrainingWithTheTerm:
    def test_the_weight_holds_the_term_down_against_the_temporal_pull(self, data, tmp_path):
        """Stability training moves the output's texture; the Gram term keeps it nearer the shipped network's."""
        base = TrainSettings(images=(str(data / "stills"),), pairs=(str(data / "pairs"),), size=48, batch=2,
                             steps=20, lr=2e-3, device="cpu", ramp=0, temporal_weight=200.0, luminance_weight=0.0,
                             distill_weight=0.0, feature_weight=0.0, sharpness_weight=0.0, checkpoint_every=100)
        seen = []
        train(dataclasses.replace(base, predictor_style_weight=100.0), tmp_path / "with.pt", progress=False,
              on_step=lambda step, values: seen.append(values))
        assert "predictor_style" in seen[0] and seen[0]["predictor_style"] < 1e-9  # the student starts as the teacher
        train(base, tmp_path / "without.pt", progress=False)

        teacher, gram = shipped_network("multistyle26"), PredictorGram()
        batch = TrainingData(base.images, base.pairs, (), 48).batch(np.random.default_rng(99), 6, real_share=0.3,
                                                                   patch_share=0.5)
        with torch.no_grad():
            after = {name: video_losses(load_video_network(tmp_path / f"{name}.pt")[1], teacher, batch, ONE_HOT_7,
                                        recurrent=False, predictor_gram=gram) for name in ("with", "without")}
        assert float(after["without"]["predictor_style"]) > 0
        assert float(after["with"]["predictor_style"]) < 0.7 * float(after["without"]["predictor_style"])
