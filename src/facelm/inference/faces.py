"""Landmarks for every face of whole photos: detector -> framed crops -> one batched prediction ->
points mapped back to each photo.

    results = predict_faces(predictor, images, detector=create_detector())

Detection runs on the whole list at once (``detector.detect_batch``), every face of every image is
cropped like a training crop (:mod:`facelm.inference.framing`) and all crops go through the model in
one ``predictor.predict`` call.

The :class:`Face` record (what :class:`facelm.Landmarker` and the video tracker return), its
confidence, and :func:`to_rgb` (the images they take) live here too, below both of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import cv2
import numpy as np

from facelm.errors import FacelmError
from facelm.inference.detectors.detection import Detections, Detector, box_iou, square_boxes
from facelm.inference.framing import crop_faces, landmark_frames, to_image
from facelm.landmarks68 import CHALLENGE_SIZE


#: the coordinate convention of every point facelm returns or writes
COORDINATES = ("pixels of the input image, continuous: x right, y down, (0, 0) the top-left corner of the "
               "top-left pixel, pixel (i, j) covers [i, i+1) x [j, j+1); 68 points in the iBUG/300-W order")
COLORS = ("bgr", "rgb")


@dataclass(frozen=True)
class Face:
    """One face of an image.

    ``box``: float32 (4,) x0, y0, x1, y1 -- the detector's box (or the box given, in the same sense: a
    face box from forehead to chin, which the detector's calibration frames like a training crop);
    ``score``: the detector's score 0..1 (None for a given box or a ready-made crop);
    ``landmarks``: float32 (68, 2) x, y in the image (:data:`COORDINATES`);
    ``confidence``: 0..1, how well the points' box agrees with the face's expected landmark box
    (IoU of the two square boxes; low when the points drifted off the face);
    ``pose``: float32 (3,) yaw, pitch, roll in degrees (yaw > 0 turned towards the image right, pitch > 0
    looking down, roll > 0 clockwise), from the 3D mean face fitted to the points (:mod:`facelm.data.head3d`);
    ``visible``: bool (68,), False where the head itself hides the point (the far jaw of a turned face,
    the far eye of a profile), from the same fit; hands, hair and glasses are not judged;
    ``keypoints``: float32 (5, 2) the detector's eyes, nose tip and mouth corners (None without them),
    so ``lm(image, boxes=faces)`` frames the faces exactly as they were detected.
    """

    box: np.ndarray
    score: float | None
    landmarks: np.ndarray
    confidence: float
    pose: np.ndarray
    visible: np.ndarray
    keypoints: np.ndarray | None = None

    def to_dict(self, decimals: int = 2) -> dict:
        """JSON-ready: numbers rounded to ``decimals`` (0.01 px by default)."""
        return {"box": np.round(self.box.astype(np.float64), decimals).tolist(),
                "score": None if self.score is None else round(float(self.score), 4),
                "confidence": round(float(self.confidence), 4),
                "pose_deg": {k: round(float(v), 2) for k, v in zip(("yaw", "pitch", "roll"), self.pose)},
                "landmarks": np.round(self.landmarks.astype(np.float64), decimals).tolist(),
                "visible": [bool(v) for v in self.visible]}


def frame_agreement(expected: tuple[np.ndarray, np.ndarray, np.ndarray], points: np.ndarray) -> np.ndarray:
    """(K,) IoU of the square boxes of expected landmark frames (centres, sizes, rolls) and of the points' frames."""
    got = landmark_frames(points)
    return np.diagonal(box_iou(square_boxes(*expected[:2]), square_boxes(*got[:2]))).copy()


def to_rgb(image, color: str = "bgr", index: int = 0) -> np.ndarray:
    """An image as :meth:`Landmarker.__call__` takes it -> a contiguous uint8 RGB (H, W, 3) array, or a
    FacelmError saying what was passed. Alpha is dropped (as ``facelm predict`` reads such files)."""
    if color not in COLORS:
        raise FacelmError(f"color must be one of {', '.join(COLORS)}, got {color!r}")
    if type(image).__module__.startswith("PIL.") and hasattr(image, "convert"):
        return np.ascontiguousarray(np.asarray(image.convert("RGB")))  # the mode says what the pixels are
    if image is None:
        raise FacelmError(f"image {index} is None (what cv2.imread returns for a file it cannot read: check the path)")
    if isinstance(image, (str, os.PathLike)):
        raise FacelmError(f"image {index} is a path ({os.fspath(image)!r}), not pixels: pass cv2.imread(path), "
                          "or run `facelm predict PATH`")
    array = np.asarray(image)
    channels = array.shape[2] if array.ndim == 3 else 1
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or channels not in (1, 3, 4) or 0 in array.shape:
        raise FacelmError(f"image {index}: expected a uint8 array (H, W, 3), (H, W) grey or (H, W, 4) with alpha, "
                          f"got {type(image).__name__} {array.dtype} {array.shape}")
    if channels == 1:
        return cv2.cvtColor(array.reshape(array.shape[:2]), cv2.COLOR_GRAY2RGB)
    array = array[:, :, :3]
    return np.ascontiguousarray(array[:, :, ::-1] if color == "bgr" else array)


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
