"""Full profiles through `facelm.Landmarker`: framed upright, and the far side of the head flagged hidden.

KDEF's full-profile photos (view FL/FR in the name) are the hard case for both: the detector's two eye
keypoints nearly coincide on a profile, so a roll taken from their line alone framed some of these
faces upside down (these four did), and only a turned head has points to hide.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import facelm
from facelm.data.head3d import mean_face

PROFILES = ("AF02AFFL.jpg", "AF02DIFL.jpg", "AF02SAFL.jpg", "AF03ANFL.jpg", "BM31NEFR.jpg")


@pytest.fixture(scope="module")
def landmarker():
    return facelm.Landmarker(threads=1)


@pytest.mark.parametrize("name", PROFILES)
def test_a_full_profile_is_upright_and_hides_its_far_side(landmarker, shared_data, name):
    image = cv2.imread(str(shared_data("kdef_photos", name)))
    faces = landmarker(image)
    assert len(faces) == 1
    face = faces[0]
    yaw, _, roll = face.pose
    assert abs(roll) < 30 and abs(yaw) > 60, face.pose  # upright in the photo, turned to a profile
    assert (name[-5] == "R") == (yaw > 0)  # KDEF's right profiles turn towards the image right
    far = np.sign(yaw) * mean_face()[:, 0] > 3
    assert face.visible[~far].all() and (~face.visible[far]).sum() >= 12
    assert (~face.visible[:17][far[:17]]).all()  # the whole far jaw
