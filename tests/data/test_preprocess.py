"""Inference preprocessing: gamma at full resolution, INTER_AREA resize, channels-first float."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facelm.errors import FacelmError
from facelm.data.gamma import auto_gamma
from facelm.data.preprocess import preprocess_images, preprocess_uint8


def _reference(img: np.ndarray, size: int, g: float) -> np.ndarray:
    """Independent formula: numpy power (no table), then INTER_AREA resize."""
    corrected = np.rint(255 * (img / 255.0) ** (1 / g)).astype(np.uint8)
    return cv2.resize(corrected, (size, size), interpolation=cv2.INTER_AREA)


@pytest.fixture
def images() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (3, 96, 96, 3), dtype=np.uint8)


def test_preprocess_images_shape_and_values(images):
    out = preprocess_images(images, 32, gamma=1.4)
    assert out.shape == (3, 3, 32, 32) and out.dtype == np.float32
    for i in range(3):
        np.testing.assert_array_equal(out[i].transpose(1, 2, 0), _reference(images[i], 32, 1.4))


def test_gamma_before_resize_differs_from_after(images):
    after = cv2.resize(images[0], (32, 32), interpolation=cv2.INTER_AREA)
    wrong_order = np.rint(255 * (after / 255.0) ** (1 / 2.0))
    right_order = preprocess_uint8(images[:1], 32, 2.0)[0]
    assert np.abs(wrong_order - right_order).max() > 2  # the order is observable, and we use the specified one


def test_list_of_mixed_sizes_keeps_order(images):
    small = np.random.default_rng(2).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    mixed = [images[0], small, images[1]]
    out = preprocess_uint8(mixed, 32, 1.2)
    assert out.shape == (3, 32, 32, 3)
    np.testing.assert_array_equal(out[1], _reference(small, 32, 1.2))
    np.testing.assert_array_equal(out[2], _reference(images[1], 32, 1.2))


def test_auto_mode_uses_each_images_own_gamma():
    dark = np.full((40, 40, 3), 50, np.uint8)
    bright = np.full((40, 40, 3), 210, np.uint8)
    out = preprocess_uint8(np.stack([dark, bright]), 20, gamma=1.0, gamma_mode="auto")
    np.testing.assert_array_equal(out[0], _reference(dark, 20, auto_gamma(dark)))
    np.testing.assert_array_equal(out[1], _reference(bright, 20, auto_gamma(bright)))
    assert abs(out.mean() / 255 - 0.5) < 0.01


def test_bad_input():
    with pytest.raises(FacelmError, match="uint8"):
        preprocess_images(np.zeros((1, 8, 8, 3), np.float32), 4, 1.0)
    with pytest.raises(FacelmError, match=r"\(N, H, W, 3\)"):
        preprocess_images(np.zeros((8, 8, 3), np.uint8), 4, 1.0)
    with pytest.raises(FacelmError, match="unknown gamma mode"):
        preprocess_images(np.zeros((1, 8, 8, 3), np.uint8), 4, 1.0, "nope")
