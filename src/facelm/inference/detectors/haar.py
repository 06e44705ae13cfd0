"""OpenCV's bundled Haar cascade: the detector that needs nothing beyond OpenCV (frontal faces only)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from facelm.errors import FacelmError
from facelm.inference.detectors.detection import Detections, within_long_side
from facelm.inference.framing import BoxCalibration

#: frontalface_default cascade (HaarDetector defaults) -> landmark box, measured with
#: ``python benchmarks/detect_calibration.py --detector haar`` (calibrate() on 1,132 found of the 1,207
#: ../shared/data/300w_train crops).
#: The landmark box sits lower than the cascade's box (dy > 0: the cascade includes the forehead,
#: the 68 points stop at the brows). tests/inference/test_detect.py re-measures it on a subset.
HAAR_CALIBRATION = BoxCalibration(dx=0.0035, dy=0.1413, scale=0.8334)


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

    def detect_batch(self, images: list[np.ndarray]) -> list[Detections]:
        """One cascade search per image (OpenCV has no batched cascade)."""
        return [self._detect_one(image) for image in images]

    def _detect_one(self, image: np.ndarray) -> Detections:
        gray, scale = within_long_side(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), self.max_side)
        gray = cv2.equalizeHist(gray)
        min_side = max(20, int(self.min_face_fraction * min(gray.shape)))
        rects, _, weights = self.cascade.detectMultiScale3(
            gray, scaleFactor=1.1, minNeighbors=self.min_neighbors, minSize=(min_side, min_side), outputRejectLevels=True)
        if len(rects) == 0:
            return Detections.empty(with_keypoints=False)
        rects = np.asarray(rects, np.float32).reshape(-1, 4)
        scores = np.asarray(weights, np.float32).reshape(-1)
        # NMSBoxes keeps scores above a non-negative threshold; level weights can be <= 0, so shift them up
        shifted = (scores - scores.min() + 1.0).tolist()
        keep = np.asarray(cv2.dnn.NMSBoxes(rects.tolist(), shifted, 0.5, 0.3), np.int64).reshape(-1)
        keep = keep[np.argsort(-scores[keep])]
        rects, scores = rects[keep] / scale, scores[keep]
        boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1)
        return Detections(boxes.astype(np.float32), scores, None)
