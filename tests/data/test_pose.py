"""Head pose from landmarks by solvePnP."""

from __future__ import annotations

import numpy as np

from facelm.data.annot import load_annot
from facelm.landmarks68 import flip_horizontal, mean_shape, yaw_proxy
from facelm.data.pose import pose_from_landmarks


def test_frontal_mean_shape_is_near_zero():
    angles = np.degrees(pose_from_landmarks(mean_shape(384)[None], 384))[0]
    assert np.all(np.abs(angles) < 8), angles


def test_in_plane_rotation_is_roll():
    pts = mean_shape(384).astype(np.float64)
    centre = pts.mean(0)
    a = np.radians(10)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    base, turned = np.degrees(pose_from_landmarks(np.stack([pts, (pts - centre) @ rot.T + centre]), 384))
    assert abs((turned[2] - base[2]) - 10) < 1.5


def test_mirroring_flips_yaw_and_roll_on_real_faces(aflw_val):
    _, pts = load_annot(aflw_val / "annot.pkl")
    pose = pose_from_landmarks(pts[:40], 384)
    mirrored = pose_from_landmarks(flip_horizontal(pts[:40], 384), 384)
    assert np.allclose(mirrored[:, 0], -pose[:, 0], atol=1e-3)
    assert np.allclose(mirrored[:, 2], -pose[:, 2], atol=1e-3)
    assert np.allclose(mirrored[:, 1], pose[:, 1], atol=1e-3)
    turned = np.abs(np.degrees(pose[:, 0])) > 20
    assert np.mean(np.sign(pose[turned, 0]) == np.sign(yaw_proxy(pts[:40][turned]))) > 0.8
