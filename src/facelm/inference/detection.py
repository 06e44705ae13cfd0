"""What a face detector returns, and how a detection is paired with a labelled face.

Kept apart from the registry (:mod:`facelm.inference.detect`) so the detector modules can
import it without importing the registry that imports them.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np

from facelm.errors import FacelmError
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


#: detections scoring below this are dropped by :class:`facelm.Landmarker` and ``facelm predict``
#: (``min_score`` / ``--min-score``): in 300w_raw_sample YuNet scores a hand 0.59 and every labelled face
#: 0.89 or more; benchmarks/README.md "Detector score threshold" has the table behind the choice
DEFAULT_MIN_SCORE = 0.75


def check_min_score(min_score: float) -> float:
    """``min_score`` as a float in [0, 1], or a FacelmError saying what was given."""
    try:
        value = float(min_score)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise FacelmError(f"min_score must be a number from 0 to 1 (a detector score), got {min_score!r}")
    return value


class ScoreFloor:
    """A detector whose detections scoring below ``min_score`` are dropped (same calibration).

    A detector with its own ``min_score`` (YuNet, CenterFace: 0.5) has it lowered to this one, so a
    floor under the detector's default still sees the weaker detections.
    """

    def __init__(self, detector: Detector, min_score: float):
        self.detector, self.min_score = detector, check_min_score(min_score)
        if isinstance(getattr(detector, "min_score", None), float):
            detector.min_score = min(detector.min_score, self.min_score)

    @property
    def calibration(self) -> BoxCalibration:
        return self.detector.calibration

    def detect_batch(self, images: list[np.ndarray]) -> list[Detections]:
        return [found.take(found.scores >= self.min_score) for found in self.detector.detect_batch(images)]


def match_face(detections: Detections, landmarks: np.ndarray) -> int | None:
    """Index of the best-scoring detection whose box centre lies inside the box of the labelled
    68 points (so a spurious hit on the background cannot pair with the face), or None.

    The issue's definition of a found face; ``detections`` are sorted best first.
    """
    lm_box = bbox(np.asarray(landmarks))
    centre = (detections.boxes[:, :2] + detections.boxes[:, 2:]) / 2
    inside = np.all((centre >= lm_box[:2]) & (centre <= lm_box[2:]), axis=1)
    return int(np.argmax(inside)) if inside.any() else None
