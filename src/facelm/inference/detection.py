"""What a face detector returns, and how a detection is paired with a labelled face.

Kept apart from the registry (:mod:`facelm.inference.detect`) so the detector modules can
import it without importing the registry that imports them.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np

from facelm.inference.framing import BoxCalibration
from facelm.landmarks68 import bbox


class Detections(NamedTuple):
    """Faces found in one image, best score first."""

    boxes: np.ndarray  # float32 (K, 4) x0, y0, x1, y1, continuous pixel coordinates
    scores: np.ndarray  # float32 (K,)
    keypoints: np.ndarray | None  # float32 (K, 5, 2): image-left eye, image-right eye, nose, mouth left, mouth right

    @classmethod
    def empty(cls, with_keypoints: bool) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                   np.zeros((0, 5, 2), np.float32) if with_keypoints else None)

    def take(self, index) -> "Detections":
        """The detections at ``index`` (an int array or a boolean mask)."""
        return Detections(self.boxes[index], self.scores[index], None if self.keypoints is None else self.keypoints[index])


class Detector(Protocol):
    calibration: BoxCalibration

    def detect_batch(self, images: list[np.ndarray]) -> list[Detections]:
        """Several RGB uint8 images (H, W, 3) (sizes may differ) -> the faces in each."""


def match_face(detections: Detections, landmarks: np.ndarray) -> int | None:
    """Index of the best-scoring detection whose box centre lies inside the box of the labelled
    68 points (so a spurious hit on the background cannot pair with the face), or None.

    The issue's definition of a found face; ``detections`` are sorted best first.
    """
    lm_box = bbox(np.asarray(landmarks))
    centre = (detections.boxes[:, :2] + detections.boxes[:, 2:]) / 2
    inside = np.all((centre >= lm_box[:2]) & (centre <= lm_box[2:]), axis=1)
    return int(np.argmax(inside)) if inside.any() else None
