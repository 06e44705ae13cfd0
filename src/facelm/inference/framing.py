"""Crops framed like the challenge's training crops, from a detector box, 5 keypoints or 68 landmarks.

A training crop puts the box around the 68 points at ``CROP_BOX_FRACTION`` of the crop side,
centred at ``CROP_CENTRE`` (:mod:`facelm.landmarks68`). Through a detector the 68 points are not
known yet, so a :class:`BoxCalibration` predicts that landmark box from what the detector gives:
its box (centre, size ``d = sqrt(w*h)``) and, when it has them, 5 keypoints (eyes, nose, mouth
corners) that give the roll. The crop is then cut along the face's roll (an upright face in the
crop) and :func:`to_image` maps the predicted points back through the crop->image transform.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facelm.landmarks68 import CHALLENGE_SIZE, CROP_BOX_FRACTION, CROP_CENTRE

#: 68-point indices of the two eyes (image-left eye first on a frontal face)
_EYES_68 = (slice(36, 42), slice(42, 48))


def _rotate(vectors: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Rotate (K, ..., 2) vectors by (K,) angles (radians, image axes: x right, y down)."""
    c, s = np.cos(angles), np.sin(angles)
    shape = (-1,) + (1,) * (vectors.ndim - 2)
    c, s = c.reshape(shape), s.reshape(shape)
    return np.stack([c * vectors[..., 0] - s * vectors[..., 1], s * vectors[..., 0] + c * vectors[..., 1]], -1)


def keypoint_roll(keypoints: np.ndarray) -> np.ndarray:
    """Roll (K,) radians from 5 keypoints (K, 5, 2): the angle of the line from the image-left to the image-right eye."""
    eye_line = keypoints[:, 1] - keypoints[:, 0]
    return np.arctan2(eye_line[:, 1], eye_line[:, 0])


def landmark_roll(landmarks: np.ndarray) -> np.ndarray:
    """Roll (K,) radians of 68-point faces (K, 68, 2), from the eye centres like :func:`keypoint_roll`."""
    eye_line = landmarks[:, _EYES_68[1]].mean(1) - landmarks[:, _EYES_68[0]].mean(1)
    return np.arctan2(eye_line[:, 1], eye_line[:, 0])


def upright_boxes(points: np.ndarray, roll: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Box of each point set (K, P, 2) in its face's upright frame -> (centres (K, 2) in the image, sizes (K,) sqrt(w*h))."""
    upright = _rotate(points, -roll)
    low, high = upright.min(1), upright.max(1)
    size = np.sqrt(np.prod(high - low, axis=1))
    return _rotate(((low + high) / 2)[:, None], roll)[:, 0], size


@dataclass(frozen=True)
class BoxCalibration:
    """Landmark box from a detector box of side ``d = sqrt(w*h)`` and centre ``c``: centre
    ``c + R(roll) (dx, dy) d``, size ``scale * d`` (size = sqrt(w*h) of the 68-point box in the
    face's upright frame). ``roll``: take the roll from the detector's keypoints (else 0)."""

    dx: float
    dy: float
    scale: float
    roll: bool = False

    def landmark_frames(self, boxes: np.ndarray, keypoints: np.ndarray | None = None
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Detector boxes (K, 4) (+ keypoints (K, 5, 2)) -> landmark-box centres (K, 2), sizes (K,), rolls (K,)."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        side = np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
        roll = np.zeros(len(boxes))
        if self.roll and keypoints is not None:
            roll = keypoint_roll(np.asarray(keypoints, np.float64))
        offset = _rotate(np.tile([[self.dx, self.dy]], (len(boxes), 1))[:, None], roll)[:, 0]
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2 + offset * side[:, None]
        return centre, self.scale * side, roll


def fit_box_calibration(boxes: np.ndarray, landmarks: np.ndarray, keypoints: np.ndarray | None = None) -> BoxCalibration:
    """Fit a :class:`BoxCalibration` from matched detector boxes (N, 4), 68-point landmarks (N, 68, 2)
    and, for a roll-aware calibration, the detector's keypoints (N, 5, 2).

    Medians of the per-face offset (in the face's upright frame) and size ratio (robust to the odd loose detection).
    """
    boxes = np.asarray(boxes, np.float64)
    landmarks = np.asarray(landmarks, np.float64)
    roll = np.zeros(len(boxes)) if keypoints is None else keypoint_roll(np.asarray(keypoints, np.float64))
    side = np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    lm_centre, lm_size = upright_boxes(landmarks, roll)
    offset = _rotate(((lm_centre - (boxes[:, :2] + boxes[:, 2:]) / 2) / side[:, None])[:, None], -roll)[:, 0]
    return BoxCalibration(round(float(np.median(offset[:, 0])), 4), round(float(np.median(offset[:, 1])), 4),
                          round(float(np.median(lm_size / side)), 4), roll=keypoints is not None)


def crop_transforms(centres: np.ndarray, sizes: np.ndarray, size: int = CHALLENGE_SIZE,
                    roll: np.ndarray | None = None) -> np.ndarray:
    """Crop->image similarity transforms (K, 2, 3) that frame landmark boxes like challenge crops.

    A landmark box of size ``L`` centred at ``c`` fills ``CROP_BOX_FRACTION`` of the crop side with
    its centre at ``CROP_CENTRE``: crop side ``L / CROP_BOX_FRACTION`` image pixels, turned by
    ``roll``; crop point ``p`` lies at ``c + R(roll) (p / size - CROP_CENTRE) side`` in the image
    (continuous coordinates).
    """
    centres = np.asarray(centres, np.float64).reshape(-1, 2)
    side = np.asarray(sizes, np.float64).reshape(-1) / CROP_BOX_FRACTION
    roll = np.zeros(len(side)) if roll is None else np.asarray(roll, np.float64).reshape(-1)
    k = side / size
    linear = np.zeros((len(side), 2, 2))
    linear[:, 0, 0] = linear[:, 1, 1] = np.cos(roll) * k
    linear[:, 1, 0] = np.sin(roll) * k
    linear[:, 0, 1] = -linear[:, 1, 0]
    origin = centres - np.einsum("kij,j->ki", linear, np.asarray(CROP_CENTRE) * size)
    return np.concatenate([linear, origin[:, :, None]], axis=2)


def warp_crops(image: np.ndarray, transforms: np.ndarray, size: int = CHALLENGE_SIZE) -> np.ndarray:
    """Cut crops uint8 (K, size, size, 3) along crop->image transforms (K, 2, 3); outside the photo is black."""
    crops = np.empty((len(transforms), size, size, 3), np.uint8)
    for i, t in enumerate(transforms):
        # warpAffine works in pixel-centre coordinates (pixel i at i): image_px = A (crop_px + 0.5) + b - 0.5
        m = t.copy()
        m[:, 2] += t[:, :2] @ [0.5, 0.5] - 0.5
        crops[i] = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return crops


def crop_faces(image: np.ndarray, boxes: np.ndarray, size: int = CHALLENGE_SIZE,
               calibration: BoxCalibration | None = None, keypoints: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Detector boxes (+ keypoints) -> (crops uint8 (K, size, size, 3), crop->image transforms (K, 2, 3) float64).

    Without a calibration the boxes are taken to be landmark boxes (a user's ``--box``).
    Map predicted crop points back with :func:`to_image`.
    """
    calibration = calibration or BoxCalibration(0.0, 0.0, 1.0)
    centres, sizes, roll = calibration.landmark_frames(boxes, keypoints)
    transforms = crop_transforms(centres, sizes, size, roll)
    return warp_crops(image, transforms, size), transforms


def to_image(points: np.ndarray, transforms: np.ndarray) -> np.ndarray:
    """Crop-frame points (K, P, 2) -> image-frame points via crop->image transforms (K, 2, 3)."""
    points = np.asarray(points, np.float64)
    return (np.einsum("kij,kpj->kpi", transforms[:, :, :2], points) + transforms[:, None, :, 2]).astype(np.float32)
