"""Helpers shared by the data tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facelm.data.annot import save_annot


def _make_labelled_folder(folder: Path, count: int, seed: int = 0) -> np.ndarray:
    """Write ``count`` 384-px JPEGs of made-up pixels with real-looking 384-frame points; returns the points."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    names = [f"f{i:02d}.jpg" for i in range(count)]
    for name in names:
        cv2.imwrite(str(folder / name), rng.integers(0, 256, (384, 384, 3), dtype=np.uint8))
    points = rng.uniform(100, 300, (count, 68, 2)).astype(np.float32)
    save_annot(folder / "annot.pkl", names, points)
    return points


@pytest.fixture(scope="session")
def make_labelled_folder():
    """The folder writer above, as a fixture so module-scoped fixtures can use it."""
    return _make_labelled_folder
