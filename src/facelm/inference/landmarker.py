"""``facelm.Landmarker``: 68 landmarks for every face of a photo in one call.

    import cv2, facelm
    lm = facelm.Landmarker()                      # the shipped model and the default detector
    faces = lm(cv2.imread("photo.jpg"))           # -> [Face(box, score, landmarks, confidence, pose, visible), ...]

Coordinates are continuous pixel coordinates of the image given: x to the right, y down, the
top-left corner of the top-left pixel at (0, 0), so pixel (i, j) covers [i, i+1) x [j, j+1)
(:data:`COORDINATES`). The 68 points follow the iBUG / 300-W order.

Faces are found by the detector (:mod:`facelm.inference.detectors.registry`), each is cropped the way the
training crops were framed, all crops run in one batched prediction, and the points are mapped
back (:mod:`facelm.inference.faces`). Runs on onnxruntime for ``.onnx`` models (the shipped ones):
no torch needed.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from facelm.errors import FacelmError
from facelm.inference.detectors.detection import DEFAULT_MIN_SCORE, AnyRotation, Detections, ScoreFloor, check_min_score
from facelm.data.head3d import head_pose_and_visibility
from facelm.inference.faces import COORDINATES, Face, detected_points, frame_agreement, frames_of, to_rgb
from facelm.landmarks68 import CROP_BOX_FRACTION, CROP_CENTRE


def crop_frames(sides: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The landmark frames (centres, sizes, rolls) of square challenge-style crops of the given sides."""
    sides = np.asarray(sides, np.float64).reshape(-1)
    return np.asarray(CROP_CENTRE)[None] * sides[:, None], CROP_BOX_FRACTION * sides, np.zeros(len(sides))


class Landmarker:
    """Faces and 68 landmarks of images: ``Landmarker()(image) -> [Face, ...]``.

    ``model``: None (the default shipped model), a shipped name (``"fast"``, ``"budget"``; see
    ``facelm models --pretrained``), or a file (``.onnx``; ``.pt`` / ensemble ``.json`` need the
    training install). ``detector``: a name of :data:`facelm.inference.detectors.registry.DETECTORS` (default
    ``auto``: YuNet where installed) or a detector object. ``threads``: CPU threads of the model (default 1: fastest per
    process on a shared machine). ``device``: ``cpu`` or ``cuda``. ``hflip_tta``: average with the
    mirrored prediction (default: the model's own setting). ``min_score``: detections scoring
    below it (0..1) are dropped (default :data:`~facelm.inference.detectors.detection.DEFAULT_MIN_SCORE`:
    drops hands and ears the detector takes for faces).
    """

    def __init__(self, model: str | os.PathLike | None = None, detector=None, threads: int | None = 1,
                 device: str | None = None, hflip_tta: bool | None = None, min_score: float = DEFAULT_MIN_SCORE,
                 any_rotation: bool = True):
        from facelm.inference.detectors.registry import DEFAULT_DETECTOR, create_detector
        from facelm.inference.loading import load_predictor
        from facelm.inference.shipped import resolve_model

        self.min_score = check_min_score(min_score)
        self.any_rotation = bool(any_rotation)
        self.model_path = resolve_model(model)
        self.predictor = load_predictor(self.model_path, device, threads)
        self._detector_spec = DEFAULT_DETECTOR if detector is None else detector
        self._detector = None if isinstance(self._detector_spec, str) else self._wrap(self._detector_spec)
        self._create_detector = create_detector
        self.hflip_tta = hflip_tta
        self.model_id = getattr(self.predictor, "model_id", self.model_path.name)

    def _wrap(self, detector):
        """The detector as this Landmarker runs it: any-rotation keypoints, then the ``min_score`` floor."""
        return ScoreFloor(AnyRotation(detector) if self.any_rotation and detector.calibration.roll else detector, self.min_score)

    @property
    def detector(self):
        """The face detector, created on first use (ready-made crops never need one): its detections
        below ``min_score`` dropped and, with ``any_rotation`` and a detector that gives keypoints,
        faces found at any in-plane angle (:class:`~facelm.inference.detectors.detection.AnyRotation`)."""
        if self._detector is None:
            self._detector = self._wrap(self._create_detector(self._detector_spec))
        return self._detector

    def __call__(self, image, color: str = "bgr", boxes=None) -> list[Face]:
        """One image -> its faces, best score first. ``image``: a uint8 array (H, W, 3) in ``color``
        order ("bgr", what ``cv2.imread`` returns, or "rgb"), (H, W) grey or (H, W, 4) with alpha, or a
        PIL image (its mode decides, ``color`` is not used). ``boxes``: the faces' boxes as the detector
        gives them (:attr:`Face.box`: (K, 4) x0, y0, x1, y1, or the :class:`Face` objects themselves,
        whose keypoints then frame them exactly as detected) instead of detecting."""
        return self.batch([image], color, None if boxes is None else [boxes])[0]

    def batch(self, images: Sequence, color: str = "bgr", boxes: Sequence | None = None) -> list[list[Face]]:
        """Several images (sizes may differ) -> the faces of each; detection and prediction batched.
        ``boxes``: one entry per image, as in :meth:`__call__`."""
        rgb = [to_rgb(image, color, i) for i, image in enumerate(images)]
        if boxes is None:
            return self.faces_of_detections(rgb, self.detector.detect_batch(rgb))
        if len(boxes) != len(rgb):
            raise FacelmError(f"got {len(boxes)} box arrays for {len(rgb)} images")
        return self.faces_of_detections(rgb, [given_detections(b, i) for i, b in enumerate(boxes)])

    def faces_of_detections(self, rgb: Sequence[np.ndarray], found: Sequence) -> list[list[Face]]:
        """RGB images and their :class:`~facelm.inference.detectors.detection.Detections` (from :attr:`detector`) -> faces.

        Each face is predicted twice: in the crop its box and keypoints frame, then in the upright crop
        framed by those first points (their eye line sets the roll), which corrects a roll that the
        keypoints got a little wrong (:func:`~facelm.inference.faces.detected_points`)."""
        points, _, keypoints = detected_points(self.predictor, self.detector, rgb, found, **self._predict_kwargs())
        return [make_faces(d.boxes, d.scores, p, frames_of(self.detector, d), k) for d, p, k in zip(found, points, keypoints)]

    def track(self, frames, color: str = "bgr", fps: float | None = None, smooth: bool = True, min_cutoff: float = 1.0,
              beta: float = 10.0, d_cutoff: float = 1.0, redetect_every: int = 30):
        """Faces followed through a video or a stream, frame by frame, as ``facelm predict clip.mp4`` does:
        a generator of :class:`~facelm.inference.video.TrackedFrame` (``index``, ``time_s``, ``image``,
        ``faces``: :class:`~facelm.inference.video.TrackedFace`, a :class:`Face` with a track ``id``).

        ``frames``: an open ``cv2.VideoCapture`` (a webcam: ``cv2.VideoCapture(0)``), a video file's
        path, or any iterable of images as :meth:`__call__` takes them, in ``color`` order. ``fps``: the
        frame rate the smoothing times the frames by (default: the capture's, else 30). Each face's crop
        is carried from frame to frame by the optical flow of its points, the detector runs when a face
        is lost and every ``redetect_every`` frames, and the points are smoothed by a One Euro filter
        (``smooth``, ``min_cutoff``, ``beta``, ``d_cutoff``; :mod:`facelm.inference.video` has the details)."""
        from facelm.inference.video import VideoOptions, track_frames

        return track_frames(self, frames, color, fps, VideoOptions(smooth, min_cutoff, beta, d_cutoff, redetect_every))

    def crops(self, crops: np.ndarray | Sequence[np.ndarray], color: str = "bgr") -> list[Face]:
        """Ready-made face crops framed like the challenge's (square, the face centred as in
        :data:`facelm.landmarks68.CROP_CENTRE`) -> one Face per crop, points in the crop's pixels.
        A crop that is not square is refused (a photo: use ``lm(image)``)."""
        rgb = [to_rgb(crop, color, i) for i, crop in enumerate(crops)]
        points = self.predictor.predict(rgb, **self._predict_kwargs()) if rgb else np.zeros((0, 68, 2), np.float32)
        sides = np.array([crop.shape[0] for crop in rgb], np.float64)
        expected = crop_frames(sides)
        boxes = np.stack([np.zeros_like(sides), np.zeros_like(sides), sides, sides], 1).astype(np.float32)
        return make_faces(boxes.reshape(-1, 4), None, points, expected)

    def _predict_kwargs(self) -> dict:
        return {} if self.hflip_tta is None else {"hflip_tta": self.hflip_tta}


def checked_boxes(boxes, where: str) -> np.ndarray:
    """Face boxes (K, 4) x0, y0, x1, y1 as float32, or a FacelmError naming ``where`` and the first box
    that is not finite with x1 > x0 and y1 > y0 (an inverted or empty box frames no face)."""
    try:
        array = np.asarray(boxes, np.float32)
    except (TypeError, ValueError):
        array = np.zeros((0, 3), np.float32)
    if array.size % 4 or array.ndim > 2 or (array.ndim == 2 and array.shape[1] != 4):
        raise FacelmError(f"{where}: expected face boxes x0, y0, x1, y1 (an array (K, 4)), got {boxes!r}"[:300])
    array = array.reshape(-1, 4)
    bad = ~(np.isfinite(array).all(1) & (array[:, 2] > array[:, 0]) & (array[:, 3] > array[:, 1]))
    if bad.any():
        raise FacelmError(f"{where}: expected a face box x0,y0,x1,y1 with x1 > x0 and y1 > y0, "
                          f"got {[round(float(v), 2) for v in array[bad][0]]}")
    return array


def given_detections(boxes, index: int = 0) -> Detections:
    """Given face boxes of one image -> Detections without scores (NaN): a (K, 4) array of boxes as the
    detector gives them, a list of :class:`Face` (their boxes and keypoints), or Detections (kept)."""
    if isinstance(boxes, Detections):
        return boxes
    faces = list(boxes) if isinstance(boxes, (list, tuple)) else []
    if faces and all(isinstance(face, Face) for face in faces):
        array = checked_boxes([face.box for face in faces], f"image {index}")
        keypoints = [face.keypoints for face in faces]
        stacked = None if any(k is None for k in keypoints) else np.stack(keypoints).astype(np.float32)
        return Detections(array, np.full(len(array), np.nan, np.float32), stacked)
    array = checked_boxes(boxes, f"image {index}")
    return Detections(array, np.full(len(array), np.nan, np.float32), None)


def make_faces(boxes: np.ndarray, scores: np.ndarray | None, points: np.ndarray, frames,
               keypoints: np.ndarray | None = None) -> list[Face]:
    """Faces from boxes (K, 4), scores (K,) (None, or NaN for a given box), points (K, 68, 2), the landmark
    frames the faces were expected in (centres, sizes, rolls; for the confidence) and the detector's keypoints."""
    if not len(points):
        return []
    confidence = frame_agreement(tuple(np.asarray(f, np.float64) for f in frames), points)
    poses, visible = head_pose_and_visibility(points)
    scores = [None if scores is None or np.isnan(scores[i]) else float(scores[i]) for i in range(len(points))]
    return [Face(np.asarray(boxes[i], np.float32), scores[i], np.asarray(points[i], np.float32), float(confidence[i]),
                 poses[i], visible[i], None if keypoints is None else np.asarray(keypoints[i], np.float32)) for i in range(len(points))]
