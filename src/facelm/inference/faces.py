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

from facelm.inference.detectors.detection import Detections, Detector
from facelm.inference.framing import crop_faces, landmark_frames, to_image
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


def two_passes(predictor, images: Sequence[np.ndarray], frames: list, batch_size: int = 64, **predict_kwargs
               ) -> tuple[list[np.ndarray], list[tuple], list[np.ndarray]]:
    """Points predicted in ``frames``, then again in the frames of those points (a training-like
    framing, its roll from their eye line) -> per image (second points, the frames they were
    predicted in, their mean distance to the first points in face sizes: a face framed the wrong
    way up moves more)."""
    first = predict_frames(predictor, images, frames, batch_size, **predict_kwargs)
    refined = [landmark_frames(p) for p in first]
    second = predict_frames(predictor, images, refined, batch_size, **predict_kwargs)
    spread = [np.linalg.norm(b - a, axis=-1).mean(-1) / np.maximum(f[1], 1e-9) for a, b, f in zip(first, second, refined)]
    return second, refined, spread


def detected_points(predictor, detector: Detector, images: Sequence[np.ndarray], found: Sequence[Detections],
                    batch_size: int = 64, **predict_kwargs) -> tuple[list[np.ndarray], list[tuple], list[np.ndarray | None]]:
    """The detections of each image -> per image (points (K, 68, 2), the landmark frames they were
    last predicted in, the keypoints that framed them), by :func:`two_passes`.

    Where the keypoints were replaced by a turned search (``first_keypoints``,
    :class:`~facelm.inference.detectors.detection.AnyRotation`), both framings run and each face keeps the
    one whose two passes agree best. The one framing of detected faces, for photos and videos alike."""
    frames = [frames_of(detector, d) for d in found]
    points, refined, spread = two_passes(predictor, images, frames, batch_size, **predict_kwargs)
    keypoints = [d.keypoints for d in found]
    if any(d.first_keypoints is not None for d in found):
        firsts = [d._replace(keypoints=d.keypoints if d.first_keypoints is None else d.first_keypoints) for d in found]
        other, other_refined, other_spread = two_passes(predictor, images, [frames_of(detector, d) for d in firsts],
                                                        batch_size, **predict_kwargs)
        for i, better in enumerate(o < s for o, s in zip(other_spread, spread)):
            points[i][better] = other[i][better]
            refined[i] = tuple(np.where(better.reshape((-1,) + (1,) * (a.ndim - 1)), b, a)
                               for a, b in zip(refined[i], other_refined[i]))
            keypoints[i] = np.where(better[:, None, None], firsts[i].keypoints, keypoints[i])
    return points, refined, keypoints


def predict_faces(predictor, images: Sequence[np.ndarray], detector: Detector, batch_size: int = 64,
                  **predict_kwargs) -> list[Faces]:
    """Every face ``detector`` finds in every image, predicted once in the detector's framing (no
    second pass; :class:`facelm.Landmarker` adds one and the options users see)."""
    found = detector.detect_batch(list(images))
    frames = [frames_of(detector, d) for d in found]
    points = predict_frames(predictor, images, frames, batch_size, **predict_kwargs)
    return [Faces(d.boxes, d.scores, p) for d, p in zip(found, points)]
