"""Face detection for whole photos, and crops framed like the challenge's training crops.

A detector is anything with ``detect(image uint8 RGB (H, W, 3)) -> (boxes (K, 4) float32
x0, y0, x1, y1, scores (K,) float32)``; :func:`create_detector` builds one by name from
:data:`DETECTORS` (add an entry to swap in a better detector). The built-in ``haar``
detector is OpenCV's bundled frontal-face cascade: weights ship inside the opencv wheel,
nothing is downloaded at run time.

Detector boxes are not landmark boxes: each detector frames a face its own way. A
:class:`BoxCalibration` maps a detector box to the expected box around the 68 points
(centre offset and size ratio, in units of the detector box size); :func:`crop_faces`
then frames that landmark box exactly like a challenge crop (``CROP_CENTRE``,
``CROP_BOX_FRACTION`` of :mod:`facelm.landmarks68`) and returns the crop-to-image
similarity transforms that map predicted points back.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import cv2
import numpy as np

from facelm.errors import FacelmError
from facelm.landmarks68 import CHALLENGE_SIZE, CROP_BOX_FRACTION, CROP_CENTRE, bbox


class Detector(Protocol):
    calibration: "BoxCalibration"

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """RGB uint8 (H, W, 3) -> boxes float32 (K, 4) x0, y0, x1, y1 in pixels, scores float32 (K,)."""


@dataclass(frozen=True)
class BoxCalibration:
    """Landmark box from a detector box of side ``d = sqrt(w*h)`` and centre ``c``:
    centre ``c + (dx, dy) * d``, size ``scale * d`` (size = sqrt(w*h) of the box around the 68 points)."""

    dx: float
    dy: float
    scale: float

    def landmark_boxes(self, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Detector boxes (K, 4) -> (expected landmark-box centres (K, 2), sizes (K,))."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        side = np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2 + np.array([self.dx, self.dy]) * side[:, None]
        return centre, self.scale * side


def fit_box_calibration(boxes: np.ndarray, landmarks: np.ndarray) -> BoxCalibration:
    """Fit a :class:`BoxCalibration` from matched detector boxes (N, 4) and 68-point landmarks (N, 68, 2).

    Medians of the per-face offset and size ratio (robust to the odd loose detection).
    """
    boxes = np.asarray(boxes, np.float64)
    side = np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    lm_box = bbox(np.asarray(landmarks, np.float64))
    lm_centre = (lm_box[:, :2] + lm_box[:, 2:]) / 2
    lm_size = np.sqrt((lm_box[:, 2] - lm_box[:, 0]) * (lm_box[:, 3] - lm_box[:, 1]))
    offset = (lm_centre - (boxes[:, :2] + boxes[:, 2:]) / 2) / side[:, None]
    return BoxCalibration(float(np.median(offset[:, 0])), float(np.median(offset[:, 1])),
                          float(np.median(lm_size / side)))


#: OpenCV frontalface_default cascade (HaarDetector defaults) -> landmark box, measured with
#: ``calibrate(HaarDetector(), "../shared/data/aflw_val")`` (2026-11-24): the best detection on 143 of
#: the 199 labelled 384x384 crops (the cascade misses most turned faces). The landmark box sits lower
#: than the cascade's box (dy > 0: the cascade includes the forehead, the 68 points stop at the brows).
#: tests/test_detect.py re-measures it on a subset and checks these constants.
HAAR_CALIBRATION = BoxCalibration(dx=0.0151, dy=0.1393, scale=0.8411)


class HaarDetector:
    """OpenCV's bundled Haar cascade (frontal faces; weak on profiles). Scores are the cascade's level weights.

    ``frontalface_default`` finds 143 of the 199 aflw_val crops against 119 for ``frontalface_alt2``.

    Photos are searched at most ``max_side`` pixels on the long side (speed); boxes come back in
    the full-resolution frame. Overlapping hits are merged by non-maximum suppression.
    """

    calibration = HAAR_CALIBRATION

    def __init__(self, cascade: str = "haarcascade_frontalface_default.xml", max_side: int = 640,
                 min_face_fraction: float = 0.06, min_neighbors: int = 4):
        path = Path(cv2.data.haarcascades) / cascade
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise FacelmError("cannot load the OpenCV face cascade", path)
        self.max_side = max_side
        self.min_face_fraction = min_face_fraction
        self.min_neighbors = min_neighbors

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = image.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        if scale < 1.0:
            gray = cv2.resize(gray, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(gray)
        min_side = max(20, int(self.min_face_fraction * min(gray.shape)))
        rects, _, weights = self.cascade.detectMultiScale3(
            gray, scaleFactor=1.1, minNeighbors=self.min_neighbors, minSize=(min_side, min_side), outputRejectLevels=True)
        if len(rects) == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        rects = np.asarray(rects, np.float32).reshape(-1, 4)
        scores = np.asarray(weights, np.float32).reshape(-1)
        # NMSBoxes keeps scores above a non-negative threshold; level weights can be <= 0, so shift them up
        shifted = (scores - scores.min() + 1.0).tolist()
        keep = np.asarray(cv2.dnn.NMSBoxes(rects.tolist(), shifted, 0.5, 0.3), np.int64).reshape(-1)
        keep = keep[np.argsort(-scores[keep])]
        rects, scores = rects[keep] / scale, scores[keep]
        boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1)
        return boxes.astype(np.float32), scores


#: name -> factory. A better detector plugs in here (same ``detect`` contract, its own calibration).
DETECTORS: dict[str, Callable[[], Detector]] = {"haar": HaarDetector}


def create_detector(name: str = "haar") -> Detector:
    if name not in DETECTORS:
        raise FacelmError(f"unknown detector {name!r} (choose from {', '.join(sorted(DETECTORS))})")
    return DETECTORS[name]()


def crop_transforms(centres: np.ndarray, sizes: np.ndarray, size: int = CHALLENGE_SIZE) -> np.ndarray:
    """Crop->image similarity transforms (K, 2, 3) that frame landmark boxes like challenge crops.

    A landmark box of size ``L`` centred at ``c`` fills ``CROP_BOX_FRACTION`` of the crop side with
    its centre at ``CROP_CENTRE``: crop side ``L / CROP_BOX_FRACTION`` image pixels; crop point
    ``p`` lies at ``origin + p * side / size`` in the image (continuous coordinates).
    """
    centres = np.asarray(centres, np.float64).reshape(-1, 2)
    side = np.asarray(sizes, np.float64).reshape(-1) / CROP_BOX_FRACTION
    origin = centres - np.asarray(CROP_CENTRE) * side[:, None]
    k = side / size
    out = np.zeros((len(side), 2, 3), np.float64)
    out[:, 0, 0] = out[:, 1, 1] = k
    out[:, :, 2] = origin
    return out


def crop_faces(image: np.ndarray, boxes: np.ndarray, size: int = CHALLENGE_SIZE,
               calibration: BoxCalibration = HAAR_CALIBRATION) -> tuple[np.ndarray, np.ndarray]:
    """Detector boxes -> (crops uint8 (K, size, size, 3), crop->image transforms (K, 2, 3) float64).

    Areas outside the photo are black. Map predicted crop points back with :func:`to_image`.
    """
    transforms = crop_transforms(*calibration.landmark_boxes(boxes), size=size)
    crops = np.empty((len(transforms), size, size, 3), np.uint8)
    for i, t in enumerate(transforms):
        # warpAffine works in pixel-centre coordinates (pixel i at i): shift the continuous map by 0.5
        m = t.copy()
        m[:, 2] += 0.5 * t[0, 0] - 0.5
        crops[i] = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return crops, transforms


def to_image(points: np.ndarray, transforms: np.ndarray) -> np.ndarray:
    """Crop-frame points (K, P, 2) -> image-frame points via crop->image transforms (K, 2, 3)."""
    points = np.asarray(points, np.float64)
    return (np.einsum("kij,kpj->kpi", transforms[:, :, :2], points) + transforms[:, None, :, 2]).astype(np.float32)


def calibrate(detector: Detector, folder: str | os.PathLike,
              names: list[str] | None = None) -> tuple[BoxCalibration, int]:
    """Fit a detector's calibration on a labelled folder of crops (or its ``names``) -> (calibration, faces used).

    Uses the highest-scoring detection per image whose centre lies inside the landmark box
    (so a spurious hit on the background cannot pair with the face).
    """
    from facelm.data.folder import imread_rgb, open_folder

    faces = open_folder(folder)
    if not faces.labelled:
        raise FacelmError("calibration needs a labelled folder (annot.pkl)", folder)
    wanted = set(faces.names if names is None else names)
    picked_boxes, picked_landmarks = [], []
    for name, landmarks in zip(faces.names, faces.landmarks):
        if name not in wanted:
            continue
        boxes, _ = detector.detect(imread_rgb(faces.path(name)))
        lm_box = bbox(landmarks)
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2
        inside = np.all((centre >= lm_box[:2]) & (centre <= lm_box[2:]), axis=1)
        if inside.any():
            picked_boxes.append(boxes[np.argmax(inside)])  # boxes are sorted by score
            picked_landmarks.append(landmarks)
    if not picked_boxes:
        raise FacelmError("the detector found no face in any image", folder)
    return fit_box_calibration(np.stack(picked_boxes), np.stack(picked_landmarks)), len(picked_boxes)
