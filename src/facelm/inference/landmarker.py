"""``facelm.Landmarker``: 68 landmarks for every face of a photo in one call.

    import cv2, facelm
    lm = facelm.Landmarker()                      # the shipped model and the default detector
    faces = lm(cv2.imread("photo.jpg"))           # -> [Face(box, score, landmarks, confidence, pose), ...]

Coordinates are continuous pixel coordinates of the image given: x to the right, y down, the
top-left corner of the top-left pixel at (0, 0), so pixel (i, j) covers [i, i+1) x [j, j+1)
(:data:`COORDINATES`). The 68 points follow the iBUG / 300-W order.

Faces are found by the detector (:mod:`facelm.inference.detect`), each is cropped the way the
training crops were framed, all crops run in one batched prediction, and the points are mapped
back (:mod:`facelm.inference.faces`). Runs on onnxruntime for ``.onnx`` models (the shipped ones):
no torch needed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from facelm.errors import FacelmError
from facelm.data.pose import pose_from_landmarks
from facelm.inference.detection import DEFAULT_MIN_SCORE, ScoreFloor, check_min_score
from facelm.inference.faces import frames_of, predict_frames
from facelm.inference.framing import box_frames, landmark_frames
from facelm.landmarks68 import CHALLENGE_SIZE, CROP_BOX_FRACTION, CROP_CENTRE

#: the coordinate convention of every point facelm returns or writes
COORDINATES = ("pixels of the input image, continuous: x right, y down, (0, 0) the top-left corner of the "
               "top-left pixel, pixel (i, j) covers [i, i+1) x [j, j+1); 68 points in the iBUG/300-W order")
COLORS = ("bgr", "rgb")


@dataclass(frozen=True)
class Face:
    """One face of an image.

    ``box``: float32 (4,) x0, y0, x1, y1 -- the detector's box (or the box given);
    ``score``: the detector's score 0..1 (None for a given box or a ready-made crop);
    ``landmarks``: float32 (68, 2) x, y in the image (:data:`COORDINATES`);
    ``confidence``: 0..1, how well the points' box agrees with the face's expected landmark box
    (IoU of the two square boxes; low when the points drifted off the face);
    ``pose``: float32 (3,) yaw, pitch, roll in degrees (:mod:`facelm.data.pose` signs).
    """

    box: np.ndarray
    score: float | None
    landmarks: np.ndarray
    confidence: float
    pose: np.ndarray

    def to_dict(self, decimals: int = 2) -> dict:
        """JSON-ready: numbers rounded to ``decimals`` (0.01 px by default)."""
        return {"box": np.round(self.box.astype(np.float64), decimals).tolist(),
                "score": None if self.score is None else round(float(self.score), 4),
                "confidence": round(float(self.confidence), 4),
                "pose_deg": {k: round(float(v), 2) for k, v in zip(("yaw", "pitch", "roll"), self.pose)},
                "landmarks": np.round(self.landmarks.astype(np.float64), decimals).tolist()}


def crop_frames(sides: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The landmark frames (centres, sizes, rolls) of square challenge-style crops of the given sides."""
    sides = np.asarray(sides, np.float64).reshape(-1)
    return np.asarray(CROP_CENTRE)[None] * sides[:, None], CROP_BOX_FRACTION * sides, np.zeros(len(sides))


def frame_agreement(expected: tuple[np.ndarray, np.ndarray, np.ndarray], points: np.ndarray) -> np.ndarray:
    """(K,) IoU of the square boxes of expected landmark frames (centres, sizes, rolls) and of the points' frames."""
    got = landmark_frames(points)
    low = np.maximum(expected[0] - expected[1][:, None] / 2, got[0] - got[1][:, None] / 2)
    high = np.minimum(expected[0] + expected[1][:, None] / 2, got[0] + got[1][:, None] / 2)
    inter = np.prod(np.clip(high - low, 0, None), axis=1)
    return inter / np.maximum(expected[1] ** 2 + got[1] ** 2 - inter, 1e-9)


def poses_deg(landmarks: np.ndarray) -> np.ndarray:
    """(K, 68, 2) points -> (K, 3) yaw, pitch, roll degrees, each face posed in its own crop frame
    (the camera of a training crop), so the pose does not depend on where the face is in the photo."""
    landmarks = np.asarray(landmarks, np.float64).reshape(-1, 68, 2)
    if not len(landmarks):
        return np.zeros((0, 3), np.float32)
    centres, sizes, _ = landmark_frames(landmarks, roll=False)
    scale = CROP_BOX_FRACTION * CHALLENGE_SIZE / np.maximum(sizes, 1e-9)
    in_crop = (landmarks - centres[:, None]) * scale[:, None, None] + np.asarray(CROP_CENTRE) * CHALLENGE_SIZE
    return np.degrees(pose_from_landmarks(in_crop, CHALLENGE_SIZE)).astype(np.float32)


class Landmarker:
    """Faces and 68 landmarks of images: ``Landmarker()(image) -> [Face, ...]``.

    ``model``: None (the default shipped model), a shipped name (``"fast"``, ``"budget"``; see
    ``facelm models --pretrained``), or a file (``.onnx``; ``.pt`` / ensemble ``.json`` need the
    training install). ``detector``: a name of :data:`facelm.inference.detect.DETECTORS` (default
    ``auto``: YuNet where installed) or a detector object. ``threads``: CPU threads of the model (default 1: fastest per
    process on a shared machine). ``device``: ``cpu`` or ``cuda``. ``hflip_tta``: average with the
    mirrored prediction (default: the model's own setting). ``min_score``: detections scoring
    below it (0..1) are dropped (default :data:`~facelm.inference.detection.DEFAULT_MIN_SCORE`:
    drops hands and ears the detector takes for faces).
    """

    def __init__(self, model: str | os.PathLike | None = None, detector=None, threads: int | None = 1,
                 device: str | None = None, hflip_tta: bool | None = None, min_score: float = DEFAULT_MIN_SCORE):
        from facelm.inference.detect import DEFAULT_DETECTOR, create_detector
        from facelm.inference.loading import load_predictor
        from facelm.inference.shipped import resolve_model

        self.min_score = check_min_score(min_score)
        self.model_path = resolve_model(model)
        self.predictor = load_predictor(self.model_path, device, threads)
        self._detector_spec = DEFAULT_DETECTOR if detector is None else detector
        self._detector = None if isinstance(self._detector_spec, str) else ScoreFloor(self._detector_spec, self.min_score)
        self._create_detector = create_detector
        self.hflip_tta = hflip_tta
        self.model_id = getattr(self.predictor, "model_id", self.model_path.name)

    @property
    def detector(self):
        """The face detector (its detections below ``min_score`` dropped), created on first use
        (ready-made crops never need one)."""
        if self._detector is None:
            self._detector = ScoreFloor(self._create_detector(self._detector_spec), self.min_score)
        return self._detector

    def __call__(self, image: np.ndarray, color: str = "bgr", boxes: np.ndarray | None = None) -> list[Face]:
        """One uint8 image (H, W, 3), ``color`` "bgr" (``cv2.imread``) or "rgb" -> its faces, best score first.
        ``boxes`` (K, 4) x0, y0, x1, y1 around brows, jaw and chin skip the detector."""
        return self.batch([image], color, None if boxes is None else [boxes])[0]

    def batch(self, images: Sequence[np.ndarray], color: str = "bgr",
              boxes: Sequence[np.ndarray] | None = None) -> list[list[Face]]:
        """Several images (sizes may differ) -> the faces of each; detection and prediction batched."""
        rgb = [_to_rgb(image, color, i) for i, image in enumerate(images)]
        if boxes is None:
            return self.faces_of_detections(rgb, self.detector.detect_batch(rgb))
        if len(boxes) != len(rgb):
            raise FacelmError(f"got {len(boxes)} box arrays for {len(rgb)} images")
        arrays = [np.asarray(b, np.float32).reshape(-1, 4) for b in boxes]
        frames = [box_frames(b) for b in arrays]
        points = predict_frames(self.predictor, rgb, frames, **self._predict_kwargs())
        return [make_faces(b, None, p, f) for b, p, f in zip(arrays, points, frames)]

    def faces_of_detections(self, rgb: Sequence[np.ndarray], found: Sequence) -> list[list[Face]]:
        """RGB images and their :class:`~facelm.inference.detection.Detections` (from :attr:`detector`) -> faces."""
        frames = [frames_of(self.detector, d) for d in found]
        points = predict_frames(self.predictor, rgb, frames, **self._predict_kwargs())
        return [make_faces(d.boxes, d.scores, p, f) for d, p, f in zip(found, points, frames)]

    def crops(self, crops: np.ndarray | Sequence[np.ndarray], color: str = "bgr") -> list[Face]:
        """Ready-made face crops framed like the challenge's (square, the face centred as in
        :data:`facelm.landmarks68.CROP_CENTRE`) -> one Face per crop, points in the crop's pixels.
        A crop that is not square is refused (a photo: use ``lm(image)``)."""
        rgb = [_to_rgb(crop, color, i) for i, crop in enumerate(crops)]
        points = self.predictor.predict(rgb, **self._predict_kwargs()) if rgb else np.zeros((0, 68, 2), np.float32)
        sides = np.array([crop.shape[0] for crop in rgb], np.float64)
        expected = crop_frames(sides)
        boxes = np.stack([np.zeros_like(sides), np.zeros_like(sides), sides, sides], 1).astype(np.float32)
        return make_faces(boxes.reshape(-1, 4), None, points, expected)

    def _predict_kwargs(self) -> dict:
        return {} if self.hflip_tta is None else {"hflip_tta": self.hflip_tta}


def _to_rgb(image: np.ndarray, color: str, index: int) -> np.ndarray:
    if color not in COLORS:
        raise FacelmError(f"color must be one of {', '.join(COLORS)}, got {color!r}")
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise FacelmError(f"image {index}: expected a uint8 (H, W, 3) array, got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image[:, :, ::-1] if color == "bgr" else image)


def make_faces(boxes: np.ndarray, scores: np.ndarray | None, points: np.ndarray, frames) -> list[Face]:
    """Faces from boxes (K, 4), scores (K,) or None, points (K, 68, 2) and the landmark frames the faces
    were expected in (centres, sizes, rolls; for the confidence)."""
    if not len(points):
        return []
    confidence = frame_agreement(tuple(np.asarray(f, np.float64) for f in frames), points)
    poses = poses_deg(points)
    return [Face(np.asarray(boxes[i], np.float32), None if scores is None else float(scores[i]),
                 np.asarray(points[i], np.float32), float(confidence[i]), poses[i]) for i in range(len(points))]
