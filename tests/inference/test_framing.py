"""Crops framed like the training crops: transforms, pixel convention, roll, landmark framing."""

from __future__ import annotations

import cv2
import numpy as np

from facelm.data.folder import open_folder
from facelm.inference.framing import (BoxCalibration, box_frames, crop_faces, crop_transforms, fit_box_calibration,
                                      landmark_frames, landmark_roll, to_image, warp_crops)
from facelm.landmarks68 import CROP_BOX_FRACTION, CROP_CENTRE, mean_shape

cv2.setNumThreads(1)


def test_identity_framing_and_point_mapping():
    # the challenge framing itself: box centre at CROP_CENTRE, size CROP_BOX_FRACTION of the side
    t = crop_transforms(np.array([CROP_CENTRE]) * 384, np.array([CROP_BOX_FRACTION * 384]), 384)
    np.testing.assert_allclose(t[0], [[1, 0, 0], [0, 1, 0]], atol=1e-4)
    # a box twice as large -> crop side twice as large, points map back through to_image
    t2 = crop_transforms(np.array([[500.0, 400.0]]), np.array([2 * CROP_BOX_FRACTION * 384]), 384)
    pts = to_image(np.array([[[0.0, 0.0], [384.0, 384.0]]]), t2)
    np.testing.assert_allclose(pts[0], [[500 - 384, 400 - 0.58 * 768], [500 + 384, 400 + 0.42 * 768]], atol=1e-3)


def test_crop_pixels_follow_the_continuous_convention():
    """A bright square at image [100, 104) x [60, 64) must map back to centre (102, 62) from the crop, at any roll."""
    image = np.zeros((300, 300, 3), np.uint8)
    image[60:64, 100:104] = 255
    for roll in (0.0, 0.4):
        crops, transforms = crop_faces(image, (np.array([[110.0, 70.0]]), np.array([40.0]), np.array([roll])), 128)
        weight = crops[0, ..., 0].astype(np.float64)
        ys, xs = np.mgrid[0:128, 0:128] + 0.5
        crop_centre = np.array([[[(xs * weight).sum() / weight.sum(), (ys * weight).sum() / weight.sum()]]])
        np.testing.assert_allclose(to_image(crop_centre, transforms)[0, 0], [102.0, 62.0], atol=0.05)


def test_all_crops_of_an_image_in_one_remap_equal_warp_affine():
    # a smooth image: both sample at 1/32 px, rounding the sample points a little differently
    image = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 256, (400, 420, 3), np.uint8), (0, 0), 3)
    transforms = crop_transforms(np.array([[100.0, 90.0], [250.0, 220.0], [10.0, 10.0]]), np.array([60.0, 90.0, 50.0]),
                                 64, np.array([0.0, 0.3, -0.2]))
    crops = warp_crops(image, transforms, 64)
    corner = to_image(np.array([[[0.5, 0.5]]]), transforms[2:])[0, 0]
    assert (corner < 0).all() and (crops[2, 0, 0] == 0).all()  # outside the photo is black
    for crop, t in zip(crops[:2], transforms[:2]):  # crops inside the photo: the same pixels as warpAffine
        m = t.copy()
        m[:, 2] += t[:, :2] @ [0.5, 0.5] - 0.5
        expected = cv2.warpAffine(image, m, (64, 64), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                  borderMode=cv2.BORDER_CONSTANT)
        assert np.abs(crop.astype(int) - expected).max() <= 2


def test_landmark_frames_of_a_rotated_face_give_an_upright_training_framing():
    """A level face turned by 25 deg, scaled and moved: framing from its 68 points undoes all three,
    so the crop sees the face exactly as the level face's own crop does."""
    shape = mean_shape(384).astype(np.float64)

    def turn(points, angle, scale=1.0, shift=(0.0, 0.0)):
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        return (points - 192) @ rot.T * scale + 192 + np.asarray(shift)

    level = turn(shape, -landmark_roll(shape[None])[0])
    angle = np.deg2rad(25)
    turned = turn(level, angle, 1.5, (200, 100))
    np.testing.assert_allclose(landmark_roll(turned[None]), [angle], atol=1e-9)

    def in_crop(points):
        frames = landmark_frames(points[None])
        inverse = np.linalg.inv(np.vstack([crop_transforms(*frames[:2], 384, frames[2])[0], [0, 0, 1]]))
        return points @ inverse[:2, :2].T + inverse[:2, 2]

    np.testing.assert_allclose(in_crop(turned), in_crop(level), atol=1e-6)
    box = np.concatenate([in_crop(level).min(0), in_crop(level).max(0)])
    np.testing.assert_allclose(np.sqrt(np.prod(box[2:] - box[:2])), CROP_BOX_FRACTION * 384, rtol=1e-6)
    np.testing.assert_allclose((box[:2] + box[2:]) / 2, np.array(CROP_CENTRE) * 384, atol=1e-6)


def test_box_calibration_fit_recovers_a_known_mapping():
    """Landmark boxes made from detector boxes by a known offset/scale (with roll): the fit finds them."""
    rng = np.random.default_rng(1)
    truth = BoxCalibration(0.02, 0.15, 0.9, roll=True)
    shape = mean_shape(1).astype(np.float64)
    boxes, landmarks, keypoints = [], [], []
    for _ in range(30):
        x0, y0, side, roll = rng.uniform(0, 300), rng.uniform(0, 300), rng.uniform(80, 200), rng.uniform(-0.4, 0.4)
        box = np.array([x0, y0, x0 + side, y0 + side])
        rot = np.array([[np.cos(roll), -np.sin(roll)], [np.sin(roll), np.cos(roll)]])
        # eyes, nose tip, mouth corners of an upright face, turned by the roll
        face_keypoints = np.array([[-0.5, 0], [0.5, 0], [0, 0.3], [-0.3, 0.8], [0.3, 0.8]]) @ rot.T
        centre, size, _ = truth.landmark_frames(box[None], face_keypoints[None])
        unit = shape - (shape.min(0) + shape.max(0)) / 2
        unit = unit / np.sqrt(np.prod(unit.max(0) - unit.min(0)))
        landmarks.append(unit @ rot.T * size[0] + centre[0])
        boxes.append(box)
        keypoints.append(face_keypoints)
    fitted = fit_box_calibration(np.array(boxes), np.array(landmarks), np.array(keypoints))
    assert fitted.roll and abs(fitted.dx - truth.dx) < 2e-3 and abs(fitted.dy - truth.dy) < 2e-3
    assert abs(fitted.scale - truth.scale) < 2e-3


def test_given_boxes_are_landmark_boxes(aflw_val):
    """A user's box around the labelled points frames the crop like the training crop it came from."""
    faces = open_folder(aflw_val)
    landmarks = np.asarray(faces.landmarks[:20], np.float64)
    boxes = np.concatenate([landmarks.min(1), landmarks.max(1)], axis=1)
    transforms = crop_transforms(*box_frames(boxes)[:2], 384)
    # the challenge crops' own framing, on average (each crop's framing varies by about 5 %)
    assert abs(np.median(transforms[:, 0, 0]) - 1) < 0.03
    assert np.abs(np.median(transforms[:, :, 2], axis=0)).max() < 8
