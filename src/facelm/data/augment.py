"""Keypoint-aware augmentation of S x S face crops (albumentations 2.x).

:func:`build_augment` turns the ``augment:`` section of config.yaml into a callable
``(image uint8 (S,S,3), landmarks float (68,2) px) -> (image, landmarks)``. All 68 points
always survive (``remove_invisible=False``): a point pushed off the crop keeps its
coordinates, it is still a training target.

Horizontal flip is done here, not by ``A.HorizontalFlip``: mirroring a face swaps the
meaning of its left/right points, so the points must be re-ordered with
:data:`facelm.landmarks68.FLIP_PERM`, and albumentations 2.0.8's ``KeypointParams`` has no
label mapping to do that.

Coordinates: facelm puts pixel ``i`` at ``[i, i+1)`` (centre ``i + 0.5``); albumentations
puts pixel centres on integers. Points are shifted by -0.5 before and +0.5 after the
albumentations pipeline so geometric transforms move points and pixels together.

Determinism: calling with ``seed=`` reseeds the flip draw and the ``Compose`` from that
seed, so a sample's augmentation depends only on the seed (the dataset derives it from
``(seed, epoch, index)``), not on which DataLoader worker draws it or in which order.
"""

from __future__ import annotations

from typing import Any, Mapping

import albumentations as A
import cv2
import numpy as np

from facelm.config import Augment as AugmentSettings
from facelm.config import augment_settings
from facelm.errors import FacelmError
from facelm.landmarks68 import NUM_POINTS, flip_horizontal

#: Smallest occluder side, as a fraction of the crop.
MIN_OCCLUSION_FRAC = 0.1


def _transforms(cfg: AugmentSettings, size: int) -> list[A.BasicTransform]:
    """The albumentations pipeline after the flip; transforms that can never fire are left out."""
    out: list[A.BasicTransform] = []
    if cfg.affine_p > 0 and (cfg.rotate_deg or cfg.scale or cfg.shift):
        out.append(
            A.Affine(
                rotate=(-cfg.rotate_deg, cfg.rotate_deg),
                scale=(1 - cfg.scale, 1 + cfg.scale),
                translate_percent=(-cfg.shift, cfg.shift),
                interpolation=cv2.INTER_LINEAR,
                border_mode=cv2.BORDER_CONSTANT,
                fill=0,
                p=cfg.affine_p,
            )
        )
    if cfg.perspective_p > 0 and cfg.perspective_scale > 0:
        out.append(A.Perspective(scale=(0, cfg.perspective_scale), keep_size=True, p=cfg.perspective_p))
    if cfg.color_p > 0:
        out.append(
            A.ColorJitter(
                brightness=cfg.brightness,
                contrast=cfg.contrast,
                saturation=cfg.saturation,
                hue=cfg.hue,
                p=cfg.color_p,
            )
        )
    if cfg.blur_p > 0:
        out.append(A.Blur(blur_limit=(3, int(cfg.blur_limit)), p=cfg.blur_p))
    if cfg.grayscale_p > 0:
        out.append(A.ToGray(p=cfg.grayscale_p))
    if cfg.jpeg_p > 0:
        out.append(A.ImageCompression(quality_range=(int(cfg.jpeg_quality_min), 100), p=cfg.jpeg_p))
    if cfg.occlusion_p > 0 and cfg.occlusion_max_frac > 0:
        hi = max(1, round(cfg.occlusion_max_frac * size))
        lo = min(hi, max(1, round(MIN_OCCLUSION_FRAC * size)))
        out.append(
            A.CoarseDropout(
                num_holes_range=(1, 1), hole_height_range=(lo, hi), hole_width_range=(lo, hi), fill=0, p=cfg.occlusion_p
            )
        )
    return out


class Augment:
    """Callable augmentation of S x S crops with their 68 landmarks (see the module docstring)."""

    def __init__(self, cfg: AugmentSettings | Mapping[str, Any] | None, size: int, seed: int | None = None):
        self.cfg = augment_settings(cfg)
        self.size = int(size)
        self.compose = A.Compose(
            _transforms(self.cfg, self.size),
            keypoint_params=A.KeypointParams(format="xy", remove_invisible=False),
            seed=seed,
        )
        self._rng = np.random.default_rng(seed)

    def __call__(
        self, image: np.ndarray, landmarks: np.ndarray, seed: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Augment one uint8 (S,S,3) RGB crop and its (68,2) points (pixel frame); ``seed`` fixes the draw."""
        if image.shape != (self.size, self.size, 3) or image.dtype != np.uint8:
            raise FacelmError(f"augment expects uint8 images of shape ({self.size}, {self.size}, 3), got {image.dtype} {image.shape}")
        points = np.asarray(landmarks, dtype=np.float32)
        if points.shape != (NUM_POINTS, 2):
            raise FacelmError(f"augment expects landmarks of shape (68, 2), got {points.shape}")
        rng = np.random.default_rng(seed) if seed is not None else self._rng
        if rng.random() < self.cfg.hflip_p:
            image = np.ascontiguousarray(image[:, ::-1])
            points = flip_horizontal(points, self.size)
        if seed is not None:
            self.compose.set_random_seed(int(rng.integers(2**31)))
        out = self.compose(image=image, keypoints=points - 0.5)
        return out["image"], np.asarray(out["keypoints"], dtype=np.float32).reshape(NUM_POINTS, 2) + 0.5


def build_augment(cfg: AugmentSettings | Mapping[str, Any] | None, size: int, seed: int | None = None) -> Augment:
    """The augmentation for ``size`` x ``size`` crops from an ``augment:`` section (typed, or a partial
    dict whose missing keys take the schema's defaults)."""
    return Augment(cfg, size, seed)
