"""What a face detector returns, and how a detection is paired with a labelled face.

Kept apart from the registry (:mod:`facelm.inference.detectors.registry`) so the detector modules can
import it without importing the registry that imports them.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import cv2
import numpy as np

from facelm.errors import FacelmError
from facelm.inference.framing import BoxCalibration
from facelm.landmarks68 import bbox


class Detections(NamedTuple):
    """Faces found in one image, best score first."""

    boxes: np.ndarray  # float32 (K, 4) x0, y0, x1, y1, continuous pixel coordinates
    scores: np.ndarray  # float32 (K,)
    keypoints: np.ndarray | None  # float32 (K, 5, 2): image-left eye, image-right eye, nose, mouth left, mouth right
    #: float32 (K, 5, 2) the keypoints as first detected, where :class:`AnyRotation` replaced them (else None)
    first_keypoints: np.ndarray | None = None

    @classmethod
    def empty(cls, with_keypoints: bool) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                   np.zeros((0, 5, 2), np.float32) if with_keypoints else None)

    def take(self, index) -> "Detections":
        """The detections at ``index`` (an int array or a boolean mask)."""
        pick = lambda array: None if array is None else array[index]  # noqa: E731
        return Detections(self.boxes[index], self.scores[index], pick(self.keypoints), pick(self.first_keypoints))


class Detector(Protocol):
    calibration: BoxCalibration

    def detect_batch(self, images: list[np.ndarray]) -> list[Detections]:
        """Several RGB uint8 images (H, W, 3) (sizes may differ) -> the faces in each."""


#: detections scoring below this are dropped by :class:`facelm.Landmarker` and ``facelm predict``
#: (``min_score`` / ``--min-score``): in 300w_raw_sample a hand scores 0.59, an ear 0.73, every labelled face
#: 0.89 or more and every real face 0.76 or more; benchmarks/README.md "Detector score threshold" has the table
DEFAULT_MIN_SCORE = 0.75


def within_long_side(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """``image`` shrunk (INTER_AREA) so its long side is at most ``max_side``, and the scale used
    (1.0: the image itself): detectors search a bounded image and divide their boxes by the scale."""
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        image = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return image, scale


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
        inner = detector
        while not isinstance(getattr(inner, "min_score", None), float) and hasattr(inner, "detector"):
            inner = inner.detector  # a wrapper (AnyRotation): lower the floor of the detector inside
        if isinstance(getattr(inner, "min_score", None), float):
            inner.min_score = min(inner.min_score, self.min_score)

    @property
    def calibration(self) -> BoxCalibration:
        return self.detector.calibration

    def detect_batch(self, images: list[np.ndarray]) -> list[Detections]:
        return [found.take(found.scores >= self.min_score) for found in self.detector.detect_batch(images)]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU (len(a), len(b)) of two sets of x0, y0, x1, y1 boxes."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    low = np.maximum(a[:, None, :2], b[None, :, :2])
    high = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(high - low, 0, None), axis=2)
    area = lambda boxes: np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


def square_boxes(centres: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Square boxes (K, 4) x0, y0, x1, y1 of sides ``sizes`` (K,) centred at ``centres`` (K, 2): landmark
    frames as boxes, so that frames are compared by :func:`box_iou` like boxes."""
    centres, sizes = np.asarray(centres, np.float64).reshape(-1, 2), np.asarray(sizes, np.float64).reshape(-1)
    return np.concatenate([centres - sizes[:, None] / 2, centres + sizes[:, None] / 2], axis=1)


def from_quarter_turn(points: np.ndarray, turns: int, shape: tuple[int, ...]) -> np.ndarray:
    """Points (..., 2) of ``np.rot90(image, turns)`` (continuous coordinates) -> the same points in ``image``
    of ``shape`` (H, W, ...). ``np.rot90`` turns counter-clockwise on screen."""
    h, w = shape[:2]
    u, v = points[..., 0], points[..., 1]
    mapped = {0: (u, v), 1: (w - v, u), 2: (w - u, h - v), 3: (v, h - u)}[turns % 4]
    return np.stack(mapped, -1).astype(np.float32)


class AnyRotation:
    """A detector whose keypoints hold at any in-plane angle of the face.

    Detectors learn upright faces: on a face turned past about 45 degrees they still find it (often)
    but put its 5 keypoints as if it were upright, so the crop is cut at the wrong roll. Here each
    face found is cut out (:data:`CUT_SIDE` px, :data:`CUT_SCALE` boxes wide) and the inner detector
    runs again on that cut-out and its three quarter turns; the keypoints of the turn that saw the
    face most upright (the highest score) are mapped back and replace the first ones: the face's
    roll is then right within the +-45 degrees a second pass on the points corrects, and its score
    replaces the first where higher (a turned face scores about as it would upright). Detectors score
    an upside-down face nearly as high as an upright one, so the turn picked is sometimes the wrong
    one: the first keypoints are kept beside (``first_keypoints``) and :class:`facelm.Landmarker`
    keeps whichever framing its points agree with best. The boxes stay those
    of the upright search, and no face comes from a turned copy alone (no new false faces).
    """

    CUT_SIDE, CUT_SCALE = 192, 1.6

    def __init__(self, detector: Detector):
        self.detector = detector

    @property
    def calibration(self) -> BoxCalibration:
        return self.detector.calibration

    def detect_batch(self, images: list[np.ndarray]) -> list[Detections]:
        found = self.detector.detect_batch(images)
        if any(d.keypoints is None for d in found) or not sum(len(d.boxes) for d in found):
            return found
        cuts, warps = [], []
        for image, detections in zip(images, found):
            for box in detections.boxes:
                cut, warp = self._cut(image, box)
                cuts += [np.ascontiguousarray(np.rot90(cut, k)) for k in range(4)]
                warps.append(warp)
        turned = self.detector.detect_batch(cuts)
        keypoints = iter([self._best_keypoints(turned[4 * i : 4 * i + 4], warp) for i, warp in enumerate(warps)])
        return [self._replace(d, [next(keypoints) for _ in d.boxes]) for d in found]

    @staticmethod
    def _replace(found: Detections, turned: list[tuple[np.ndarray | None, float]]) -> Detections:
        """Each face with the keypoints of its most upright turn and the higher of the two scores, best score first."""
        keypoints = np.stack([k if kp is None else kp for (kp, _), k in zip(turned, found.keypoints)]) if turned else found.keypoints
        scores = np.maximum(found.scores, np.array([score for _, score in turned], np.float32)) if turned else found.scores
        order = np.argsort(-scores, kind="stable")
        return Detections(found.boxes[order], scores[order].astype(np.float32), keypoints.reshape(-1, 5, 2)[order].astype(np.float32),
                          found.keypoints[order])

    def _cut(self, image: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, float]]:
        """A CUT_SIDE square around ``box`` -> (cut-out, (its top-left corner in the image, image px per cut px))."""
        centre, side = (box[:2] + box[2:]) / 2, self.CUT_SCALE * float(max(box[2:] - box[:2]))
        corner, k = centre - side / 2, self.CUT_SIDE / side
        # cut pixel u (continuous) = k (x - corner); OpenCV maps pixel centres: u - 0.5 = k (x - 0.5) + t
        shift = 0.5 * k - 0.5 - k * corner
        warp = np.array([[k, 0, shift[0]], [0, k, shift[1]]], np.float64)
        cut = cv2.warpAffine(image, warp, (self.CUT_SIDE, self.CUT_SIDE), flags=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
        return cut, (corner, 1 / k)

    def _best_keypoints(self, per_turn: list[Detections], warp: tuple[np.ndarray, float]) -> tuple[np.ndarray | None, float]:
        """(keypoints (5, 2) in the image, score) of the most upright turn's detection at the cut-out's
        centre (within half the face's box), or (None, -inf)."""
        best, best_score = None, -np.inf
        for k, found in enumerate(per_turn):
            if not len(found.boxes):
                continue
            shape = (self.CUT_SIDE, self.CUT_SIDE)
            centres = from_quarter_turn((found.boxes[:, :2] + found.boxes[:, 2:]) / 2, k, shape)
            distance = np.linalg.norm(centres - self.CUT_SIDE / 2, axis=1)
            i = int(np.argmin(distance))
            if distance[i] < self.CUT_SIDE / (4 * self.CUT_SCALE) and found.scores[i] > best_score:
                best, best_score = from_quarter_turn(found.keypoints[i], k, shape), float(found.scores[i])
        return (None if best is None else best * warp[1] + warp[0]), best_score


def match_face(detections: Detections, landmarks: np.ndarray) -> int | None:
    """Index of the best-scoring detection whose box centre lies inside the box of the labelled
    68 points (so a spurious hit on the background cannot pair with the face), or None.

    The issue's definition of a found face; ``detections`` are sorted best first.
    """
    lm_box = bbox(np.asarray(landmarks))
    centre = (detections.boxes[:, :2] + detections.boxes[:, 2:]) / 2
    inside = np.all((centre >= lm_box[:2]) & (centre <= lm_box[2:]), axis=1)
    return int(np.argmax(inside)) if inside.any() else None
