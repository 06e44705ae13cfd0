"""Face detection and challenge-style cropping."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facelm.inference.detect import (HAAR_CALIBRATION, HaarDetector, calibrate, create_detector, crop_faces, crop_transforms,
                           to_image)
from facelm.errors import FacelmError
from facelm.data.folder import imread_rgb
from facelm.landmarks68 import CROP_BOX_FRACTION, CROP_CENTRE

cv2.setNumThreads(1)

#: two frontal aflw_test crops the Haar cascade finds (checked by hand: one clean detection each)
TWO_FACES = ("image00019.jpg", "image00014.jpg")
OFFSETS = ((40, 70), (520, 30))  # where the 384 crops go on the canvas (x, y)


def two_face_canvas(aflw_test) -> np.ndarray:
    """Two 384x384 test crops pasted side by side on a 960x480 grey canvas."""
    canvas = np.full((480, 960, 3), 128, np.uint8)
    for name, (x, y) in zip(TWO_FACES, OFFSETS):
        canvas[y : y + 384, x : x + 384] = imread_rgb(aflw_test / name)
    return canvas


def test_both_faces_found_and_framed_like_the_training_crops(aflw_test):
    canvas = two_face_canvas(aflw_test)
    boxes, scores = create_detector("haar").detect(canvas)
    assert boxes.dtype == np.float32 and boxes.shape[1] == 4 and scores.shape == (len(boxes),)
    crops, transforms = crop_faces(canvas, boxes, 384)
    assert crops.shape == (len(boxes), 384, 384, 3)
    for x, y in OFFSETS:
        # a pasted challenge crop is itself a perfectly framed crop: scale 1, origin at the paste offset.
        # Haar box sizes jitter by 10-15 % from image to image, hence the tolerances.
        framed = (np.abs(transforms[:, :, 2] - [x, y]).max(axis=1) < 40) & (np.abs(transforms[:, 0, 0] - 1.0) < 0.2)
        assert framed.sum() == 1, f"face pasted at {(x, y)}: transforms {transforms.round(2).tolist()}"


def test_identity_framing_and_point_mapping():
    # the challenge framing itself: box centre at CROP_CENTRE, size CROP_BOX_FRACTION of the side
    t = crop_transforms(np.array([CROP_CENTRE]) * 384, np.array([CROP_BOX_FRACTION * 384]), 384)
    np.testing.assert_allclose(t[0], [[1, 0, 0], [0, 1, 0]], atol=1e-4)
    # a box twice as large -> crop side twice as large, points map back through to_image
    t2 = crop_transforms(np.array([[500.0, 400.0]]), np.array([2 * CROP_BOX_FRACTION * 384]), 384)
    pts = to_image(np.array([[[0.0, 0.0], [384.0, 384.0]]]), t2)
    np.testing.assert_allclose(pts[0], [[500 - 384, 400 - 0.58 * 768], [500 + 384, 400 + 0.42 * 768]], atol=1e-3)


def test_crop_pixels_follow_the_continuous_convention():
    """A bright square at image [100, 104) x [60, 64) must map back to centre (102, 62) from the crop."""
    image = np.zeros((300, 300, 3), np.uint8)
    image[60:64, 100:104] = 255
    centre, size = np.array([[110.0, 70.0]]), np.array([40.0])
    crops, transforms = crop_faces(image, np.zeros((1, 4)), 128, calibration=_FixedBox(centre, size))
    weight = crops[0, ..., 0].astype(np.float64)
    ys, xs = np.mgrid[0:128, 0:128] + 0.5
    crop_centre = np.array([[[(xs * weight).sum() / weight.sum(), (ys * weight).sum() / weight.sum()]]])
    np.testing.assert_allclose(to_image(crop_centre, transforms)[0, 0], [102.0, 62.0], atol=0.05)


class _FixedBox:
    """A calibration stand-in that ignores the detector box and returns a given landmark box."""

    def __init__(self, centre, size):
        self.centre, self.size = centre, size

    def landmark_boxes(self, boxes):
        return self.centre, self.size


def test_calibration_constants_reproduce_on_aflw_val(aflw_val):
    """Re-fit on the first 40 aflw_val crops: close to the stored constants (fitted on all 199)."""
    from facelm.data.folder import open_folder

    fitted, used = calibrate(HaarDetector(), aflw_val, names=open_folder(aflw_val).names[:40])
    assert used >= 20
    assert abs(fitted.dx - HAAR_CALIBRATION.dx) < 0.06  # dx follows the subset's yaw mix
    assert abs(fitted.dy - HAAR_CALIBRATION.dy) < 0.04
    assert abs(fitted.scale - HAAR_CALIBRATION.scale) < 0.04


def test_no_face_and_unknown_detector():
    boxes, scores = HaarDetector().detect(np.full((200, 300, 3), 90, np.uint8))
    assert boxes.shape == (0, 4) and scores.shape == (0,)
    crops, transforms = crop_faces(np.zeros((50, 50, 3), np.uint8), boxes)
    assert crops.shape == (0, 384, 384, 3) and transforms.shape == (0, 2, 3)
    with pytest.raises(FacelmError, match="unknown detector 'nope'"):
        create_detector("nope")


def test_calibrate_needs_labels(tmp_path):
    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(FacelmError, match="labelled folder"):
        calibrate(HaarDetector(), tmp_path)
