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


@pytest.fixture
def device() -> str:
    return "cpu"
