"""Crops framed like the challenge's training crops, from a detector box, a given box or 68 landmarks.

A training crop puts the box around the 68 points at ``CROP_BOX_FRACTION`` of the crop side,
centred at ``CROP_CENTRE`` (:mod:`facelm.landmarks68`). Through a detector the 68 points are not
known yet, so a :class:`BoxCalibration` predicts that landmark box from what the detector gives:
its box (centre, size ``d = sqrt(w*h)``) and, when it has them, 5 keypoints whose eyes and mouth give
the roll. The crop is cut along the face's roll (an upright face in the crop) and
:func:`to_image` maps the predicted points back through the crop->image transform. While
tracking a video the previous frame's 68 points frame the next crop (:func:`landmark_frames`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facelm.landmarks68 import CHALLENGE_SIZE, CROP_BOX_FRACTION, CROP_CENTRE

#: 68-point indices of the two eyes (image-left eye first on a frontal face)
_EYES_68 = (slice(36, 42), slice(42, 48))
_MOUTH_68 = slice(48, 68)
#: crops are cut this many map rows at a time (bounds the sampling maps' memory; cv2.remap takes
#: at most SHRT_MAX rows)
_REMAP_ROWS = 8192


def _rotate(vectors: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Rotate (K, ..., 2) vectors by (K,) angles (radians, image axes: x right, y down)."""
    c, s = np.cos(angles), np.sin(angles)
    shape = (-1,) + (1,) * (vectors.ndim - 2)
    c, s = c.reshape(shape), s.reshape(shape)
    return np.stack([c * vectors[..., 0] - s * vectors[..., 1], s * vectors[..., 0] + c * vectors[..., 1]], -1)


def _roll(left_eye: np.ndarray, right_eye: np.ndarray, mouth: np.ndarray) -> np.ndarray:
    """Roll (K,) radians from the eyes (image-left, image-right) and the mouth's centre, (K, 2) each.

    The eye line alone is only as good as the eyes are far apart: on a full profile the two eyes
    nearly coincide and their line points anywhere (a face framed upside down). So the eye line is
    summed with the eyes-to-mouth axis turned a quarter (pointing where the eye line points on an
    upright face): each counts by its length, the eye line on a frontal face, the axis on a profile."""
    eye_line = right_eye - left_eye
    down = mouth - (left_eye + right_eye) / 2
    right = eye_line + np.stack([down[:, 1], -down[:, 0]], axis=1)
    return np.arctan2(right[:, 1], right[:, 0])


def keypoint_roll(keypoints: np.ndarray) -> np.ndarray:
    """Roll (K,) radians from 5 keypoints (K, 5, 2): eyes (image-left first), nose tip, mouth corners."""
    return _roll(keypoints[:, 0], keypoints[:, 1], keypoints[:, 3:5].mean(1))


def landmark_roll(landmarks: np.ndarray) -> np.ndarray:
    """Roll (K,) radians of 68-point faces (K, 68, 2), from the eye centres and the mouth like :func:`keypoint_roll`."""
    return _roll(landmarks[:, _EYES_68[0]].mean(1), landmarks[:, _EYES_68[1]].mean(1), landmarks[:, _MOUTH_68].mean(1))


def upright_boxes(points: np.ndarray, roll: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Box of each point set (K, P, 2) in its face's upright frame -> (centres (K, 2) in the image, sizes (K,) sqrt(w*h))."""
    upright = _rotate(points, -roll)
    low, high = upright.min(1), upright.max(1)
    size = np.sqrt(np.prod(high - low, axis=1))
    return _rotate(((low + high) / 2)[:, None], roll)[:, 0], size


def landmark_frames(landmarks: np.ndarray, roll: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """68-point faces (K, 68, 2) -> landmark-box centres (K, 2), sizes (K,), rolls (K,) (zero without ``roll``)."""
    landmarks = np.asarray(landmarks, np.float64).reshape(-1, 68, 2)
    angles = landmark_roll(landmarks) if roll else np.zeros(len(landmarks))
    return (*upright_boxes(landmarks, angles), angles)


def box_frames(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes (K, 4) taken as landmark boxes (a user's own face box) -> centres, sizes sqrt(w*h), zero rolls."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    side = np.sqrt(np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None))
    return (boxes[:, :2] + boxes[:, 2:]) / 2, side, np.zeros(len(boxes))


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
        centre, side, roll = box_frames(boxes)
        if self.roll and keypoints is not None:
            roll = keypoint_roll(np.asarray(keypoints, np.float64).reshape(-1, 5, 2))
        offset = _rotate(np.tile([[self.dx, self.dy]], (len(side), 1))[:, None], roll)[:, 0]
        return centre + offset * side[:, None], self.scale * side, roll

    def detector_boxes(self, frames: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
        """Landmark frames (centres, sizes, rolls) -> the square detector boxes (K, 4) this calibration
        maps to them (its inverse): a box in the sense of a detection, for faces known by their points."""
        centres, sizes, rolls = (np.asarray(f, np.float64) for f in frames)
        side = sizes.reshape(-1) / self.scale
        roll = rolls.reshape(-1) if self.roll else np.zeros(len(side))
        offset = _rotate(np.tile([[self.dx, self.dy]], (len(side), 1))[:, None], roll)[:, 0]
        centre = centres.reshape(-1, 2) - offset * side[:, None]
        return np.concatenate([centre - side[:, None] / 2, centre + side[:, None] / 2], axis=1).astype(np.float32)


def fit_box_calibration(boxes: np.ndarray, landmarks: np.ndarray, keypoints: np.ndarray | None = None) -> BoxCalibration:
    """Fit a :class:`BoxCalibration` from matched detector boxes (N, 4), 68-point landmarks (N, 68, 2)
    and, for a roll-aware calibration, the detector's keypoints (N, 5, 2).

    Medians of the per-face offset (in the face's upright frame) and size ratio (robust to the odd loose detection).
    """
    centre, side, roll = box_frames(boxes)
    if keypoints is not None:
        roll = keypoint_roll(np.asarray(keypoints, np.float64))
    lm_centre, lm_size = upright_boxes(np.asarray(landmarks, np.float64), roll)
    offset = _rotate(((lm_centre - centre) / side[:, None])[:, None], -roll)[:, 0]
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
    """Cut crops uint8 (K, size, size, 3) along crop->image transforms (K, 2, 3); outside the photo is black.

    All crops of the image come from one ``cv2.remap`` over stacked sampling maps (bilinear).
    """
    transforms = np.asarray(transforms, np.float64).reshape(-1, 2, 3)
    # crop pixel (u, v) covers [u, u+1): its centre u + 0.5 maps to the image point A p + b, which
    # lies in OpenCV's pixel-centre coordinates at A p + b - 0.5
    grid = np.stack(np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5), -1)  # (S, S, 2) x, y
    per_call = max(1, _REMAP_ROWS // size)
    crops = np.empty((len(transforms), size, size, 3), np.uint8)
    for start in range(0, len(transforms), per_call):
        t = transforms[start : start + per_call]
        maps = (np.einsum("kij,uvj->kuvi", t[:, :, :2], grid) + t[:, None, None, :, 2] - 0.5).astype(np.float32)
        maps = maps.reshape(-1, size, 2)
        out = cv2.remap(image, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        crops[start : start + len(t)] = out.reshape(len(t), size, size, 3)
    return crops


def crop_faces(image: np.ndarray, frames: tuple[np.ndarray, np.ndarray, np.ndarray], size: int = CHALLENGE_SIZE
               ) -> tuple[np.ndarray, np.ndarray]:
    """Landmark frames (centres, sizes, rolls) of one image -> (crops uint8 (K, size, size, 3),
    crop->image transforms (K, 2, 3) float64). Map predicted crop points back with :func:`to_image`."""
    transforms = crop_transforms(*frames[:2], size, frames[2])
    return warp_crops(image, transforms, size), transforms


def to_image(points: np.ndarray, transforms: np.ndarray) -> np.ndarray:
    """Crop-frame points (K, P, 2) -> image-frame points via crop->image transforms (K, 2, 3)."""
    points = np.asarray(points, np.float64)
    return (np.einsum("kij,kpj->kpi", transforms[:, :, :2], points) + transforms[:, None, :, 2]).astype(np.float32)
