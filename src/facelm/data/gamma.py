"""Gamma correction through a 256-entry lookup table.

Formula (the user's): scale pixels to [0, 1], apply ``O = I ** (1 / G)``, scale back to
0..255 and round. ``G > 1`` brightens dark tones, ``G < 1`` darkens, ``G = 1`` is the
identity. Because the output depends only on the input grey level, the whole correction
is one 256-entry table applied with ``cv2.LUT``: one table read per pixel.

Two modes (``preprocess.gamma_mode`` in config.yaml):

``fixed``
    One ``G`` for every image (training, validation and test alike). It is a global
    tone curve the model learns with, so it helps when the whole test set is darker or
    lighter than the training set (the training faces are renders with even, studio-like
    light; the test faces are real photographs). ``G`` is a tuning parameter.

``auto``
    A per-image ``G`` chosen so that the image's mean luminance ``m`` (in [0, 1]) maps
    to 0.5: ``m ** (1 / G) = 0.5`` gives ``G = ln(m) / ln(0.5)``. This normalises
    exposure image by image, which helps on real photographs with uneven or extreme
    light (under-exposed faces get brightened, washed-out ones darkened) at the cost of
    also changing renders that were fine. ``G`` is clamped to
    ``[AUTO_GAMMA_MIN, AUTO_GAMMA_MAX]`` so near-black or near-white images are not
    pushed to absurd curves.

The correction is applied at full resolution, before any resize (see
:mod:`facelm.data.preprocess`, :mod:`facelm.data.cache`), so cache and inference agree byte for byte.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from facelm.errors import FacelmError

GAMMA_MODES = ("fixed", "auto")

#: Clamp range of the per-image gamma of mode "auto".
AUTO_GAMMA_MIN = 0.25
AUTO_GAMMA_MAX = 4.0

#: ITU-R BT.601 luma weights (R, G, B), the same ones cv2's RGB2GRAY uses.
_LUMA = np.array([0.299, 0.587, 0.114])


@functools.lru_cache(maxsize=512)
def _cached_lut(g: float) -> np.ndarray:
    levels = np.arange(256, dtype=np.float64) / 255.0
    lut = np.rint(255.0 * np.power(levels, 1.0 / g)).clip(0, 255).astype(np.uint8)
    lut.setflags(write=False)
    return lut


def gamma_lut(g: float) -> np.ndarray:
    """The uint8 (256,) table ``round(255 * (i / 255) ** (1 / g))`` for grey levels ``i``."""
    g = float(g)
    if not np.isfinite(g) or g <= 0:
        raise FacelmError(f"gamma must be a positive number, got {g}")
    return _cached_lut(g)


def auto_gammas(images: np.ndarray) -> np.ndarray:
    """Per-image gamma mapping the mean luminance to 0.5, for a uint8 (N, H, W, 3) RGB batch (clamped)."""
    mean_rgb = images.reshape(len(images), -1, 3).mean(axis=1, dtype=np.float64)
    m = np.clip(mean_rgb @ _LUMA / 255.0, 1e-3, 1.0 - 1e-3)
    return np.clip(np.log(m) / np.log(0.5), AUTO_GAMMA_MIN, AUTO_GAMMA_MAX)


def auto_gamma(img: np.ndarray) -> float:
    """:func:`auto_gammas` of one uint8 (H, W, 3) RGB image."""
    return float(auto_gammas(img[None])[0])
