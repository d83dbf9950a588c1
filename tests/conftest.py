"""Shared fixtures: the real test material in ../shared/data, and device/dtype for tensor tests."""
from __future__ import annotations

from pathlib import Path

import pytest

from shared_data import CLIPS, DATA


@pytest.fixture
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"real test material not found at {DATA} (it lives in ../shared/data beside the repository)")
    return DATA


@pytest.fixture(params=sorted(CLIPS))
def clip(request, data_dir) -> Path:
    """Each shared clip in turn."""
    return CLIPS[request.param]


@pytest.fixture(scope="session")
def random_vgg(tmp_path_factory) -> Path:
    """Seeded random-init VGG-19 in torchvision's state-dict format (features up to relu5_1, ~52 MB).

    No ImageNet weights can be had offline: quality-mode tests check the mechanics with it.
    """
    import torch
    import torchvision

    torch.manual_seed(0)
    sd = torchvision.models.vgg19().state_dict()
    path = tmp_path_factory.mktemp("vgg") / "vgg19_random.pth"
    torch.save({k: v for k, v in sd.items() if k.startswith("features.") and int(k.split(".")[1]) <= 28}, path)
    return path


@pytest.fixture
def device() -> str:
    return "cpu"
