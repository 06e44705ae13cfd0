"""Keypoint-aware augmentation: points keep their meaning and follow the pixels."""

from __future__ import annotations

import numpy as np
import pytest

from facelm.data.annot import load_annot
from facelm.data.augment import build_augment
from facelm.errors import FacelmError
from facelm.landmarks68 import flip_horizontal

ONLY_FLIP = {"hflip_p": 1.0, "affine_p": 0, "perspective_p": 0, "color_p": 0, "blur_p": 0, "grayscale_p": 0,
             "jpeg_p": 0, "occlusion_p": 0}


def test_flip_keeps_every_point_meaning_on_real_faces(train_300w):
    _, pts = load_annot(train_300w / "annot.pkl")
    frontal = pts[np.abs(pts[:, 30, 0] - (pts[:, 0, 0] + pts[:, 16, 0]) / 2) < 15][:100]
    flipped = flip_horizontal(frontal, 384)
    assert (flipped[:, 36:42, 0].mean(1) < flipped[:, 42:48, 0].mean(1)).all()  # image-left eye stays 36-41
    assert (flipped[:, 0, 0] < flipped[:, 16, 0]).all()  # the jaw still runs left to right
    assert (flipped[:, 48, 0] < flipped[:, 54, 0]).all() and (flipped[:, 17, 0] < flipped[:, 26, 0]).all()
    augment = build_augment(ONLY_FLIP, 384)
    image = np.zeros((384, 384, 3), np.uint8)
    _, out = augment(image, frontal[0], seed=1)
    assert np.allclose(out, flipped[0], atol=1e-3)


def test_points_follow_the_pixels_under_geometric_transforms():
    """Mark three landmark positions with bright dots; after augmentation each dot sits at its point."""
    size = 128
    cfg = {**ONLY_FLIP, "hflip_p": 0.5, "affine_p": 1.0, "rotate_deg": 30, "scale": 0.2, "shift": 0.05,
           "perspective_p": 1.0}
    augment = build_augment(cfg, size)
    points = np.full((68, 2), 64.0, np.float32)
    points[[0, 30, 45]] = [[30.5, 40.5], [64.5, 70.5], [90.5, 50.5]]
    for seed in range(5):
        image = np.zeros((size, size, 3), np.uint8)
        for channel, (x, y) in zip(range(3), points[[0, 30, 45]]):
            image[int(y) - 1 : int(y) + 2, int(x) - 1 : int(x) + 2, channel] = 255
        out_image, out_points = augment(image, points, seed=seed)
        # a flip renumbers points (0 <-> 16, 45 <-> 36), so each dot must sit on one of these ids
        candidates = out_points[[0, 16, 30, 36, 45]]
        for channel in range(3):
            ys, xs = np.nonzero(out_image[..., channel] > 100)
            if len(xs) == 0:
                continue  # pushed outside the crop
            centre = np.array([xs.mean() + 0.5, ys.mean() + 0.5])
            assert np.linalg.norm(candidates - centre, axis=1).min() < 2.0, (seed, channel, centre)


def test_same_seed_same_draw_and_bad_shapes():
    augment = build_augment({}, 64)
    image = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    pts = np.random.default_rng(1).uniform(10, 50, (68, 2)).astype(np.float32)
    a, b = augment(image, pts, seed=7), augment(image, pts, seed=7)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    with pytest.raises(FacelmError):
        augment(image[:10], pts)
    with pytest.raises(FacelmError, match="unknown"):
        build_augment({"rotate": 3}, 64)
