"""Head pose and per-point visibility from the 3D mean face (facelm.data.head3d)."""

from __future__ import annotations

import numpy as np
import pytest

from facelm.data.head3d import MEAN_FACE_FILE, head_pose_and_visibility, mean_face
from facelm.landmarks68 import FLIP_PERM


def turned(yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0, scale: float = 2.0) -> np.ndarray:
    """The mean face turned (degrees; yaw towards the image right, pitch down, roll clockwise) and
    projected orthographically into a 384 px image: (68, 2)."""
    y, p, r = np.radians([yaw, pitch, roll])
    about_y = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    about_x = np.array([[1, 0, 0], [0, np.cos(p), np.sin(p)], [0, -np.sin(p), np.cos(p)]])
    about_z = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return (mean_face() @ (about_z @ about_x @ about_y).T)[:, :2] * scale + 192


@pytest.mark.parametrize("yaw, pitch, roll", [(0, 0, 0), (35, 0, 0), (-60, 0, 0), (0, 20, 0), (0, -20, 0), (0, 0, 25),
                                              (90, 0, 0), (-90, 0, 0)])
def test_the_fit_recovers_the_pose_it_was_turned_by(yaw, pitch, roll):
    pose, _ = head_pose_and_visibility(turned(yaw, pitch, roll)[None])
    np.testing.assert_allclose(pose[0], [yaw, pitch, roll], atol=0.5)


def test_a_frontal_face_hides_nothing_and_a_profile_hides_its_far_side():
    _, visible = head_pose_and_visibility(np.stack([turned(), turned(90), turned(-90), turned(45)]))
    assert visible[0].all()
    far = mean_face()[:, 0] > 3  # the side a face turned towards the image right turns away
    near_or_midline = ~far
    assert visible[1][near_or_midline].all() and (~visible[1][far]).mean() > 0.6
    assert (~visible[1][:17]).sum() >= 7 and (~visible[1][42:48]).all()  # the far jaw and the far eye
    assert (visible[2] == visible[1][FLIP_PERM]).all()  # the mirror image hides the mirrored points
    assert set(np.flatnonzero(~visible[3])) <= set(range(9, 17))  # a half profile: the far jaw only


def test_visibility_does_not_depend_on_where_or_how_large_the_face_is():
    points = turned(30, 10, -5)
    _, small = head_pose_and_visibility(points[None])
    _, large = head_pose_and_visibility((points * 7 + 1000)[None])
    assert (small == large).all() and head_pose_and_visibility(np.zeros((0, 68, 2)))[1].shape == (0, 68)


def test_the_shipped_mean_face_is_the_bfm_mean_shape(shared_data, tmp_path):
    folder = shared_data().parent / "models" / "3ddfa_v2"
    if not folder.is_dir():
        pytest.skip(f"needs {folder}")
    from facelm.models.bfm import write_mean_face

    np.testing.assert_array_equal(write_mean_face(folder, tmp_path / "face.npy"), np.load(MEAN_FACE_FILE))
