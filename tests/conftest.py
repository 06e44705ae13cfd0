"""Shared fixtures: where the read-only development data lives, and small made-up data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FACELM_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data; skips the calling test (with the reason) when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (the read-only development data beside the repo); not present here")
    return path


@pytest.fixture
def aflw_val() -> Path:
    return shared_path("aflw_val")


@pytest.fixture
def aflw_test() -> Path:
    return shared_path("aflw_test")


@pytest.fixture
def train_300w() -> Path:
    return shared_path("300w_train")


@pytest.fixture
def facesynthetics_100() -> Path:
    return shared_path("facesynthetics_100")


@pytest.fixture
def raw_300w_sample() -> Path:
    return shared_path("300w_raw_sample")


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> Path:
    """A tiny self-made dataset in the challenge layout (made once per test session)."""
    from facelm.demo_data import make_demo_data

    out = tmp_path_factory.mktemp("demo")
    make_demo_data(out, n_train=48, n_val=12, n_test=10, seed=0)
    return out
