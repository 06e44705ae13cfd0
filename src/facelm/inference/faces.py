"""Landmarks for every face of whole photos: detector -> framed crops -> one batched prediction ->
points mapped back to each photo.

    results = predict_faces(predictor, images, detector=create_detector())

Detection runs on the whole list at once (``detector.detect_batch``), every face of every image is
cropped like a training crop (:mod:`facelm.inference.framing`) and all crops go through the model in
one ``predictor.predict`` call.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from facelm.inference.detection import Detections, Detector
from facelm.inference.framing import crop_faces, to_image
from facelm.landmarks68 import CHALLENGE_SIZE


class Faces(NamedTuple):
    """The faces of one image: the detector's boxes and scores,
    68 points (K, 68, 2) float32 in the image's pixel frame."""

    boxes: np.ndarray
    scores: np.ndarray | None
    landmarks: np.ndarray


def frames_of(detector: Detector, detections: Detections) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A detector's boxes (+ keypoints) -> landmark frames (centres, sizes, rolls) via its calibration."""
    return detector.calibration.landmark_frames(detections.boxes, detections.keypoints)


def predict_frames(predictor, images: Sequence[np.ndarray], frames: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                   batch_size: int = 64, **predict_kwargs) -> list[np.ndarray]:
    """Landmark frames per image -> 68 points (K_i, 68, 2) per image, all crops in one batched prediction."""
    crops, transforms = [], []
    for image, frame in zip(images, frames):
        image_crops, image_transforms = crop_faces(image, frame, CHALLENGE_SIZE)
        crops.append(image_crops)
        transforms.append(image_transforms)
    counts = [len(t) for t in transforms]
    if sum(counts) == 0:
        return [np.zeros((0, 68, 2), np.float32) for _ in images]
    points = predictor.predict(np.concatenate(crops), batch_size, **predict_kwargs)
    points = to_image(points, np.concatenate(transforms))
    return np.split(points, np.cumsum(counts)[:-1])


def predict_faces(predictor, images: Sequence[np.ndarray], detector: Detector, batch_size: int = 64,
                  **predict_kwargs) -> list[Faces]:
    """Every face ``detector`` finds in every image, predicted once in the detector's framing (no
    second pass; :class:`facelm.Landmarker` adds one and the options users see)."""
    found = detector.detect_batch(list(images))
    frames = [frames_of(detector, d) for d in found]
    points = predict_frames(predictor, images, frames, batch_size, **predict_kwargs)
    return [Faces(d.boxes, d.scores, p) for d, p in zip(found, points)]
