"""Inference-time preprocessing, identical to what the cache stores.

Every predictor turns raw crops into model input with :func:`preprocess_images`; the
cache (:mod:`facelm.data.cache`) stores the output of :func:`preprocess_uint8` for the same
parameters, so a model sees byte-identical pixels at training and inference time.
Order matters: the gamma table is applied to the full-resolution image, then it is
resized with ``cv2.INTER_AREA`` (averaging after the non-linear curve, as the issue asks).
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from facelm.errors import FacelmError
from facelm.data.gamma import GAMMA_MODES, auto_gammas, gamma_lut


def _as_groups(images: np.ndarray | Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split the input into (row indices, uint8 (n,H,W,3) stack) groups of one shape each."""
    if isinstance(images, np.ndarray):
        if images.ndim != 4 or images.shape[-1] != 3:
            raise FacelmError(f"expected images of shape (N, H, W, 3), got {images.shape}")
        if images.dtype != np.uint8:
            raise FacelmError(f"expected uint8 images, got {images.dtype}")
        return [(np.arange(len(images)), images)]
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, img in enumerate(images):
        if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[-1] != 3 or img.dtype != np.uint8:
            raise FacelmError(f"image {i}: expected a uint8 (H, W, 3) array")
        by_shape.setdefault(img.shape, []).append(i)
    return [(np.array(rows), np.stack([images[i] for i in rows])) for rows in by_shape.values()]


def _gamma_batch(images: np.ndarray, gamma: float, gamma_mode: str) -> np.ndarray:
    if gamma_mode == "fixed":
        if gamma == 1.0:
            return images
        n, h, w, c = images.shape
        # cv2.LUT works on 2-D mats of up to 4 channels; stacking rows keeps it one call.
        return cv2.LUT(images.reshape(n * h, w, c), gamma_lut(gamma)).reshape(images.shape)
    if gamma_mode == "auto":
        luts = np.stack([gamma_lut(g) for g in auto_gammas(images)])  # (N, 256)
        return np.take_along_axis(luts, images.reshape(len(images), -1), axis=1).reshape(images.shape)
    raise FacelmError(f"unknown gamma mode {gamma_mode!r} (expected one of {', '.join(GAMMA_MODES)})")


def preprocess_uint8(
    images: np.ndarray | Sequence[np.ndarray], size: int, gamma: float = 1.0, gamma_mode: str = "fixed"
) -> np.ndarray:
    """Gamma at full resolution, then INTER_AREA resize: uint8 (N, S, S, 3) RGB (the cache's pixels).

    ``cv2.resize`` has no batch form (and at most 4 channels), so the resize is one C call per
    image; the gamma table is applied to each same-shape group in one call.
    """
    size = int(size)
    groups = _as_groups(images)
    n = sum(len(rows) for rows, _ in groups)
    out = np.empty((n, size, size, 3), np.uint8)
    for rows, stack in groups:
        corrected = _gamma_batch(stack, gamma, gamma_mode)
        if stack.shape[1:3] == (size, size):
            out[rows] = corrected
            continue
        for row, img in zip(rows, corrected):
            out[row] = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    return out


def preprocess_images(
    images: np.ndarray | Sequence[np.ndarray], size: int, gamma: float = 1.0, gamma_mode: str = "fixed"
) -> np.ndarray:
    """Model input from RGB uint8 crops: float32 (N, 3, S, S) with values 0..255 (channels first)."""
    return preprocess_uint8(images, size, gamma, gamma_mode).transpose(0, 3, 1, 2).astype(np.float32)
