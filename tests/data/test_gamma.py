"""Gamma table and the per-image (auto) mode (applied by :func:`facelm.data.preprocess.preprocess_uint8`)."""

from __future__ import annotations

import numpy as np
import pytest

from facelm.errors import FacelmError
from facelm.data.gamma import AUTO_GAMMA_MAX, AUTO_GAMMA_MIN, auto_gamma, auto_gammas, gamma_lut
from facelm.data.preprocess import preprocess_uint8


def test_lut_matches_formula():
    for g in (0.5, 1.0, 1.7, 2.2):
        levels = np.arange(256) / 255.0
        expected = np.rint(255 * levels ** (1 / g)).astype(np.uint8)
        np.testing.assert_array_equal(gamma_lut(g), expected)
    assert gamma_lut(1.0).tolist() == list(range(256))
    assert gamma_lut(2.0)[64] > 64 and gamma_lut(0.5)[64] < 64  # G > 1 brightens, G < 1 darkens


def test_fixed_gamma_is_a_table_read_per_pixel():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (17, 17, 3), dtype=np.uint8)
    out = preprocess_uint8(img[None], 17, 1.8, "fixed")[0]  # same size: the resize is the identity
    assert out.shape == img.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, gamma_lut(1.8)[img])


def test_bad_inputs_raise_one_line_errors():
    with pytest.raises(FacelmError, match="positive"):
        gamma_lut(0)
    with pytest.raises(FacelmError, match="uint8"):
        preprocess_uint8([np.zeros((4, 4, 3), np.float32)], 4, 1.5)
    with pytest.raises(FacelmError, match="unknown gamma mode"):
        preprocess_uint8(np.zeros((1, 4, 4, 3), np.uint8), 4, 1.0, "sometimes")


def test_auto_gamma_maps_mean_luminance_to_half():
    for level in (40, 90, 128, 200):
        img = np.full((8, 8, 3), level, np.uint8)
        g = auto_gamma(img)
        corrected = preprocess_uint8(img[None], 8, 7.0, "auto")[0]  # the fixed value is ignored in auto mode
        np.testing.assert_array_equal(corrected, gamma_lut(g)[img])
        assert abs(corrected.mean() / 255 - 0.5) < 0.01
    dark, bright = np.full((4, 4, 3), 1, np.uint8), np.full((4, 4, 3), 254, np.uint8)
    assert auto_gamma(dark) == AUTO_GAMMA_MAX and auto_gamma(bright) == AUTO_GAMMA_MIN


def test_auto_gammas_is_batched_and_uses_luminance():
    batch = np.stack([np.full((4, 4, 3), v, np.uint8) for v in (60, 128, 190)])
    gs = auto_gammas(batch)
    assert gs.shape == (3,) and gs[0] > 1 > gs[2]
    green = np.zeros((1, 4, 4, 3), np.uint8)
    green[..., 1] = 200
    blue = np.zeros((1, 4, 4, 3), np.uint8)
    blue[..., 2] = 200
    assert auto_gammas(green)[0] < auto_gammas(blue)[0]  # green carries more luminance than blue
