"""Shared fixtures: where the read-only development data lives, and small made-up data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FACELM_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def pytest_configure(config):
    """One torch thread in the test process: tests are small, and on a 2-core machine a 2-thread
    pool competing with DataLoader workers and subprocesses is far slower than one thread."""
    import torch

    torch.set_num_threads(1)


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data; skips the calling test (with the reason) when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (the read-only development data beside the repo); not present here")
    return path


@pytest.fixture(scope="session")
def shared_data():
    """:func:`shared_path` as a fixture, for fixtures of any scope (``from conftest import`` is
    ambiguous: tests/data has a conftest.py too)."""
    return shared_path


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
def huge_header_jpeg() -> bytes:
    """A small, valid-looking JPEG whose header claims 60000 x 60000 pixels (a decompression bomb)."""
    import struct

    import cv2
    import numpy as np

    data = bytearray(cv2.imencode(".jpg", np.zeros((64, 64, 3), np.uint8))[1].tobytes())
    sof = data.find(b"\xff\xc0")  # start of frame: length (2), precision (1), height (2), width (2)
    data[sof + 5 : sof + 9] = struct.pack(">HH", 60000, 60000)
    return bytes(data)


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> Path:
    """A tiny self-made dataset in the challenge layout (made once per test session)."""
    from facelm.data.demo import make_demo_data

    out = tmp_path_factory.mktemp("demo")
    make_demo_data(out, n_train=48, n_val=12, n_test=10, seed=0)
    return out


@pytest.fixture(scope="session")
def tiny_pipeline(demo_data, tmp_path_factory):
    """A config over the demo data plus two briefly trained fold runs of two models (made once)."""
    from facelm import layout
    from facelm.config import parse_config
    from facelm.data.folds import write_folds
    from facelm.training.trainer import train_model

    root = tmp_path_factory.mktemp("pipeline")
    config = parse_config({
        "data_dir": str(demo_data), "train_sets": ["synthetics_train"], "results_dir": str(root / "results"),
        "submissions_dir": str(root / "submissions"), "run_name": "tiny",
        "models": [{"name": "pfld_025"}, {"name": "mobilenetv3_small_050", "kwargs": {"head": "regression"}}],
        "folds": {"k": 2, "train_folds": [0, 1]}, "train": {"size": 64, "epochs": 1, "batch_size": 8, "workers": 0},
    })
    write_folds(config, layout.folds_csv(config))
    runs = []
    for entry in config.models:
        for fold in (0, 1):
            out = layout.run_dir(config, entry.id, fold)
            train_model(config, entry, fold, out)
            runs.append(out)
    return config, runs
