"""Landmarks on video: faces tracked from frame to frame, smoothed, written per frame with an overlay video.

    for frame in facelm.Landmarker().track(cv2.VideoCapture(0)):   # any iterable of frames, or a capture
        frame.faces                                                 # [TrackedFace(id, landmarks, ...), ...]

    facelm predict clip.mp4 --out tracked/                          # the same tracker, written to files
    -> tracked/clip.landmarks.csv  (model, frame, time_s, face, source, score, box_x0..box_y1, x0, y0, ..., x67, y67, v0..v67;
                                    TrackedFace's fields, coordinates as in facelm.inference.landmarker.COORDINATES, 0.01 px)
       tracked/clip.overlay.mp4    (the clip with each face's points and id drawn)

Tracking (:class:`FaceTracker`): the detector finds the faces on the first frame (a second pass
re-predicts each face in the training-like frame of its first points); from then on each face's
crop is carried to the next frame by the optical flow of its 68 points (:mod:`facelm.inference.point_flow`:
shift, scale and turn), so a moving face stays where the model expects it in the crop, and all
faces of a frame go through the model in one batched prediction. Every prediction gets a
face-presence score: the fraction of its points that land where the flow carried the last ones.
A track is lost when the score drops below :data:`MIN_SCORE` or its points do not fit the crop
(:func:`plausible`); the detector then runs, and a face found again within :data:`REID_SECONDS`
near where a track was lost gets that track's id back. On top of the flow, each of the crop's
centre, size and roll follows the points only once they moved from it by more than
:data:`REFRAME`: a model's small systematic error (say it sees faces 3 % smaller than they are)
would otherwise feed back through the crop frame after frame; a face that comes to rest (points
still for :data:`SETTLE_FRAMES` frames) has its crop centred on it once. The detector also runs
when no face is tracked and every ``redetect_every`` frames (new faces start tracks; a tracked face
the detector no longer sees is dropped). Points written are smoothed per face by a One Euro filter
(:mod:`facelm.inference.one_euro`); the next crop uses the raw points, so smoothing lag never feeds
back into tracking.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, NamedTuple

import cv2
import numpy as np

from facelm.atomic import atomic_open, atomic_path
from facelm.errors import FacelmError
from facelm.data.head3d import head_pose_and_visibility
from facelm.inference.detectors.detection import Detections, box_iou, square_boxes
from facelm.inference.drawing import draw_faces
from facelm.inference.faces import (COLORS, Face, detected_points, frame_agreement, frames_of,
                                    predict_frames, to_rgb)
from facelm.inference.framing import landmark_frames
from facelm.inference.one_euro import OneEuroFilter
from facelm.inference.point_flow import agreement, face_motion, flow_points, move_frames
from facelm.landmarks68 import bbox

#: a detection and a track are the same face above this IoU of their landmark boxes
MATCH_IOU = 0.3
#: a track's crop is re-framed from its points once their box centre moved this fraction of the
#: face size, their size changed by this factor, or their roll by this many degrees
REFRAME = {"centre": 0.08, "size": 1.1, "roll_deg": 6.0}
#: a face whose points moved less than this fraction of its size (mean per point) for SETTLE_FRAMES
#: frames is at rest: its crop is centred on it once
STILL_FRACTION, SETTLE_FRAMES = 0.01, 3
#: a track whose face-presence score (:func:`facelm.inference.point_flow.agreement`) falls below this is lost
MIN_SCORE = 0.5
#: a face detected within REID_SECONDS of losing a track, its centre within REID_DISTANCE face sizes of
#: where the track was last seen, takes that track's id
REID_SECONDS, REID_DISTANCE = 2.0, 1.0
#: a track matched to a detection whose square boxes overlap by less than this is re-framed from the detection
REFRAME_IOU = 0.75
#: a track is checked against the detector on each of its first YOUNG_FRAMES frames, and for as long
#: after its points last reached the frame's edge
YOUNG_FRAMES = 5


@dataclass(frozen=True)
class VideoOptions:
    smooth: bool = True
    min_cutoff: float = 1.0  # Hz, One Euro cutoff at rest
    beta: float = 10.0  # Hz per (face sizes per second)
    d_cutoff: float = 1.0  # Hz, cutoff of the speed estimate
    redetect_every: int = 30  # frames; 0: only when a face is lost or none is tracked
    overlay: bool = True

    def checked(self) -> "VideoOptions":
        """These options, or a FacelmError saying which one is out of range."""
        if not (self.min_cutoff > 0 and self.d_cutoff > 0 and self.beta >= 0):
            raise FacelmError(f"min_cutoff (--min-cutoff) and d_cutoff (--d-cutoff) must be > 0 and beta (--beta) >= 0, "
                              f"got {self.min_cutoff}, {self.d_cutoff}, {self.beta}")
        if not (isinstance(self.redetect_every, int) and self.redetect_every >= 0):
            raise FacelmError(f"redetect_every (--redetect-every) must be a whole number >= 0, got {self.redetect_every!r}")
        return self


@dataclass
class Track:
    id: int
    landmarks: np.ndarray  # raw (68, 2) of the last frame
    crop: tuple[np.ndarray, np.ndarray, np.ndarray]  # centre (2,), size (), roll () of the next crop
    smoother: OneEuroFilter | None
    framed: tuple  # the landmark frame (centre, size, roll) the last points were predicted in
    still: int = 0  # frames the points have stayed put
    settled: bool = True  # crop centred on the points since it last moved
    source: str = "detect"  # how this frame's crop was framed: detect | track
    score: float = 1.0  # face presence: the detector's score, then the flow agreement
    seen: int = 0  # the last frame it was on
    born: int = 0  # the frame it started on, or its points last reached the frame's edge


@dataclass(frozen=True)
class TrackedFace(Face):
    """One face of one video frame: a :class:`~facelm.inference.faces.Face` with its track.

    ``id``: the track id, the same for one face from frame to frame (a face lost and found again
    near where it was within :data:`REID_SECONDS` gets its id back); ``source``: ``detect`` (framed
    from the detector on this frame) or ``track`` (from its points on the last frame);
    ``landmarks``: the smoothed points; ``score``: face presence, the detector's score on a detect
    frame, then the fraction of the points the optical flow confirms; ``box``: the detector box of
    those points (the detector's calibration inverted, square; a box ``boxes=`` takes);
    ``confidence`` and ``pose`` as for photos; no ``keypoints``.
    """

    id: int = 0
    source: str = "detect"

    def to_dict(self, decimals: int = 2) -> dict:
        return {"id": self.id, "source": self.source, **super().to_dict(decimals)}


class TrackedFrame(NamedTuple):
    """What :meth:`facelm.Landmarker.track` yields per frame."""

    index: int  # 0, 1, ... in the order the frames came
    time_s: float  # index / fps
    image: np.ndarray  # the frame as given
    faces: list[TrackedFace]


def plausible(before: tuple[np.ndarray, np.ndarray, np.ndarray], after: tuple[np.ndarray, np.ndarray, np.ndarray],
              shape: tuple[int, ...]) -> np.ndarray:
    """(K,) bool: the new points (their frames ``after``, :func:`landmark_frames`) fit the crop they
    were predicted in (same size within a factor 1.6, centre moved less than half a face) and their
    centre lies in the frame. A face that left the crop (occluded, gone, or a jump) fails this and
    is handed back to the detector."""
    centres, sizes, _ = after
    ratio = sizes / np.maximum(before[1], 1e-9)
    moved = np.linalg.norm(centres - before[0], axis=1) / np.maximum(before[1], 1e-9)
    inside = (centres >= 0).all(1) & (centres[:, 0] < shape[1]) & (centres[:, 1] < shape[0])
    return (ratio > 1 / 1.6) & (ratio < 1.6) & (moved < 0.5) & inside


def reframed(crop: tuple, points_frame: tuple) -> tuple[tuple, bool]:
    """The next crop frame (centre, size, roll) of a face whose points, with frame ``points_frame``,
    came from ``crop``: each part follows the points only once they moved from the crop's by more
    than :data:`REFRAME`. Returns the frame and whether any part moved."""
    centre, size, roll = points_frame
    turned = np.degrees(abs((roll - crop[2] + np.pi) % (2 * np.pi) - np.pi))
    follow = (np.linalg.norm(centre - crop[0]) > REFRAME["centre"] * crop[1],
              max(size / crop[1], crop[1] / size) > REFRAME["size"], turned > REFRAME["roll_deg"])
    return tuple(new if f else old for new, old, f in zip(points_frame, crop, follow)), any(follow)


@dataclass
class FaceTracker:
    """Frame-to-frame landmark tracking (see the module docstring); ``update(frame, index)`` per frame."""

    predictor: object
    detector: object
    options: VideoOptions
    fps: float
    batch_size: int = 64
    predict_kwargs: dict = field(default_factory=dict)  # the predictor's options (hflip_tta), as for photos
    tracks: list[Track] = field(default_factory=list)
    lost: list[Track] = field(default_factory=list)  # recently lost tracks, for their ids
    _next_id: int = 0
    _previous: np.ndarray | None = None  # the last frame, grey

    def _new_track(self, landmarks: np.ndarray, crop: tuple[np.ndarray, np.ndarray, np.ndarray],
                   score: float = 1.0, index: int = 0, framed: tuple | None = None) -> Track:
        o = self.options
        smoother = OneEuroFilter(o.min_cutoff, o.beta, o.d_cutoff) if o.smooth else None
        centre = landmark_frames(landmarks[None])[0][0]
        track_id = self._reclaim_id(centre, float(crop[1]), index)
        if track_id is None:
            track_id, self._next_id = self._next_id, self._next_id + 1
        return Track(track_id, landmarks, crop, smoother, crop if framed is None else framed, score=score, seen=index, born=index)

    def _reclaim_id(self, centre: np.ndarray, size: float, index: int) -> int | None:
        """The id of the nearest recently lost track this face may be (see :data:`REID_SECONDS`), forgotten once taken."""
        self.lost = [t for t in self.lost if index - t.seen <= REID_SECONDS * self.fps]
        near = [(float(np.linalg.norm(landmark_frames(t.landmarks[None])[0][0] - centre)), i) for i, t in enumerate(self.lost)
                if max(t.crop[1] / size, size / t.crop[1]) < 1.5]
        near = [(d, i) for d, i in near if d < REID_DISTANCE * self.lost[i].crop[1]]
        if not near:
            return None
        return self.lost.pop(min(near)[1]).id

    def _carried_crops(self, grey: np.ndarray) -> tuple[tuple, np.ndarray | None, np.ndarray | None]:
        """The tracks' crops moved by the flow since the last frame -> (crops, flowed points, kept) (None without a last frame)."""
        crops = tuple(np.stack(parts) for parts in zip(*(t.crop for t in self.tracks)))
        if self._previous is None or self._previous.shape != grey.shape:
            return crops, None, None
        last = np.stack([t.landmarks for t in self.tracks]).astype(np.float64)
        sizes = landmark_frames(last)[1]
        moved, kept = flow_points(self._previous, grey, last, sizes)
        return move_frames(crops, face_motion(last, moved, kept, sizes)), moved, kept

    def _follow(self, frame: np.ndarray, grey: np.ndarray, index: int) -> bool:
        """Predict every track in its flow-carried crop, score it, re-frame it; drop the lost ones. True if any was lost."""
        if not self.tracks:
            return False
        crops, moved, kept = self._carried_crops(grey)
        points = predict_frames(self.predictor, [frame], [crops], self.batch_size, **self.predict_kwargs)[0]
        after = landmark_frames(points)
        scores = np.array([t.score for t in self.tracks]) if moved is None else agreement(points, moved, kept, after[1])
        ok = plausible(crops, after, frame.shape) & (scores >= MIN_SCORE)
        for track, new, crop, new_frame, score in zip(self.tracks, points, zip(*crops), zip(*after), scores):
            moved_points = np.linalg.norm(new - track.landmarks, axis=1).mean() > STILL_FRACTION * track.crop[1]
            track.still = 0 if moved_points else track.still + 1
            track.landmarks, track.source, track.score, track.framed = new, "track", float(score), crop
            track.crop, changed = reframed(crop, new_frame)
            if changed:
                track.settled = False
            elif track.still >= SETTLE_FRAMES and not track.settled:
                # the face came to rest inside the dead band, maybe off the crop's centre: centre the
                # crop on it once (a model's bias then moves the crop once per stop, not every frame)
                track.crop, track.settled = new_frame, True
        self.lost += [t for t, good in zip(self.tracks, ok) if not good]
        self.tracks = [t for t, good in zip(self.tracks, ok) if good]
        for track in self.tracks:
            track.seen = index
        return not ok.all()

    def _framed(self, frame: np.ndarray, found: Detections) -> tuple[np.ndarray, list[tuple], list[tuple]]:
        """Detections -> (points, the frames they were predicted in, the next crops), framed as photos are
        (:func:`~facelm.inference.faces.detected_points`: two passes, the better of two roll guesses)."""
        [points], [framed], _ = detected_points(self.predictor, self.detector, [frame], [found], self.batch_size,
                                                **self.predict_kwargs)
        framed = list(zip(*framed))
        return points, framed, [reframed(crop, new)[0] for crop, new in zip(framed, zip(*landmark_frames(points)))]

    def _detect(self, frame: np.ndarray, scheduled: bool, index: int) -> None:
        """Start tracks for detected faces nobody tracks; re-frame a track from its detection when the two
        disagree (:data:`REFRAME_IOU`); on a scheduled run, drop tracks the detector no longer sees."""
        found = self.detector.detect_batch([frame])[0]
        centres, sizes, _ = frames_of(self.detector, found)
        fresh = np.ones(len(sizes), bool)
        if self.tracks and len(sizes):
            tracked = landmark_frames(np.stack([t.landmarks for t in self.tracks]))
            iou = box_iou(square_boxes(centres, sizes), square_boxes(tracked[0], tracked[1]))
            fresh = ~(iou > MATCH_IOU).any(1)
            off = [(i, j) for j, i in enumerate(iou.argmax(0)) if MATCH_IOU < iou[i, j] < REFRAME_IOU]
            if off:  # the track's points sit off the detected face (say it was born half out of the frame)
                for (i, j), p, framed, crop in zip(off, *self._framed(frame, found.take(np.array([i for i, _ in off])))):
                    track = self.tracks[j]
                    track.landmarks, track.crop, track.framed = p, crop, framed
                    track.source, track.score = "detect", float(found.scores[i])
        if scheduled and self.tracks:
            seen = (iou > MATCH_IOU).any(0) if len(sizes) else np.zeros(len(self.tracks), bool)
            self.lost += [t for t, s in zip(self.tracks, seen) if not s]
            self.tracks = [t for t, s in zip(self.tracks, seen) if s]
        if fresh.any():
            new = found.take(fresh)
            self.tracks += [self._new_track(p, crop, float(score), index, framed)
                            for p, framed, crop, score in zip(*self._framed(frame, new), new.scores)]

    def _needs_detector(self, frame_shape: tuple[int, ...], index: int) -> bool:
        """A track started, or its points reached the frame's edge (a face entering or leaving, framed from
        what is visible), within :data:`YOUNG_FRAMES`: check it against the detector on this frame."""
        for track in self.tracks:
            box = bbox(track.landmarks)
            if (box[:2] < 0).any() or box[2] > frame_shape[1] or box[3] > frame_shape[0]:
                track.born = index
        return any(index - track.born < YOUNG_FRAMES for track in self.tracks)

    def update(self, frame: np.ndarray, index: int) -> list[TrackedFace]:
        """One RGB frame -> its faces (smoothed points), tracks updated."""
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        lost = self._follow(frame, grey, index)
        every = self.options.redetect_every
        scheduled = every > 0 and index % every == 0 and index > 0
        if lost or scheduled or not self.tracks or self._needs_detector(frame.shape, index):
            self._detect(frame, scheduled, index)
        self._previous = grey
        return self._faces(index)

    def _faces(self, index: int) -> list[TrackedFace]:
        """The tracks as faces of frame ``index``: points smoothed (the tracks keep the raw ones)."""
        if not self.tracks:
            return []
        raw = np.stack([t.landmarks for t in self.tracks]).astype(np.float64)
        sizes = landmark_frames(raw)[1]
        points = np.stack([p if t.smoother is None else t.smoother(index / self.fps, p, scale=float(size))
                           for t, p, size in zip(self.tracks, raw, sizes)]).astype(np.float32)
        framed = tuple(np.stack(parts) for parts in zip(*(t.framed for t in self.tracks)))
        confidence = frame_agreement(framed, raw)
        boxes = self.detector.calibration.detector_boxes(landmark_frames(points))
        poses, visible = head_pose_and_visibility(points)
        return [TrackedFace(box, t.score, p, float(c), pose, seen, None, t.id, t.source)
                for t, box, p, c, pose, seen in zip(self.tracks, boxes, points, confidence, poses, visible)]


def _frames_of(source, fps: float | None) -> tuple[Iterator, float, object]:
    """What :func:`track_frames` reads -> (an iterator of its frames, frames per second, a capture to
    release at the end or None). ``source``: a video file's path (opened here), an open
    ``cv2.VideoCapture`` (or anything with its ``read()`` and ``get()``), or any iterable of images."""
    owned = None
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        source = owned = cv2.VideoCapture(path)
        if not source.isOpened():
            raise FacelmError("cannot open the video", path)
    if hasattr(source, "read") and hasattr(source, "get"):
        if hasattr(source, "isOpened") and not source.isOpened():
            raise FacelmError("the video capture is not open (no such camera, or a file OpenCV cannot read)")
        fps = fps or source.get(cv2.CAP_PROP_FPS) or 30.0

        def read() -> Iterator:
            while True:
                ok, image = source.read()
                if not ok:
                    return
                yield image

        return read(), fps, owned
    try:
        return iter(source), fps or 30.0, None
    except TypeError:
        raise FacelmError(f"frames must be an iterable of images, a cv2.VideoCapture or a video's path, "
                          f"got {type(source).__name__}") from None


def track_frames(landmarker, frames, color: str = "bgr", fps: float | None = None,
                 options: VideoOptions = VideoOptions()) -> Iterator[TrackedFrame]:
    """:meth:`facelm.Landmarker.track`: the frames' faces tracked by one :class:`FaceTracker` (its predictor,
    detector and ``hflip_tta``), one :class:`TrackedFrame` per frame as it comes. Bad options, a source
    that is not one and a capture that is not open are refused here, before the first frame."""
    options = options.checked()
    if fps is not None and not (isinstance(fps, (int, float)) and fps > 0):
        raise FacelmError(f"fps must be a number > 0, got {fps!r}")
    if color not in COLORS:
        raise FacelmError(f"color must be one of {', '.join(COLORS)}, got {color!r}")
    source, fps, owned = _frames_of(frames, fps)
    tracker = FaceTracker(landmarker.predictor, landmarker.detector, options, float(fps),
                          predict_kwargs=landmarker._predict_kwargs())

    def run() -> Iterator[TrackedFrame]:
        try:
            for index, image in enumerate(source):
                yield TrackedFrame(index, index / tracker.fps, image, tracker.update(to_rgb(image, color, index), index))
        finally:
            if owned is not None:
                owned.release()

    return run()


def csv_header() -> str:
    coords = ",".join(f"x{i},y{i}" for i in range(68))
    visible = ",".join(f"v{i}" for i in range(68))
    return f"model,frame,time_s,face,source,score,box_x0,box_y0,box_x1,box_y1,{coords},{visible}\n"


def csv_rows(index: int, fps: float, faces: list[TrackedFace], model: str = "") -> str:
    """One CSV line per face; coordinates in pixels to 0.01 px (the box is :attr:`TrackedFace.box`, a detector's
    box), then each point's visibility, 1 or 0 (:attr:`TrackedFace.visible`)."""
    rows = []
    for face in faces:
        numbers = np.concatenate([face.box, face.landmarks.reshape(-1)])
        rows.append(f"{model},{index},{index / fps:.4f},{face.id},{face.source},{face.score:.3f},"
                    + ",".join(f"{v:.2f}" for v in numbers) + "," + ",".join("1" if v else "0" for v in face.visible) + "\n")
    return "".join(rows)


@contextlib.contextmanager
def video_writer(path: Path, fps: float) -> Iterator:
    """``write(bgr_frame)`` into an mp4 at ``path`` that appears only once complete (atomic)."""
    with atomic_path(path) as tmp:
        # VideoWriter picks the container from the suffix: write <tmp>.mp4, then move it onto tmp
        staged, writer = tmp.with_name(tmp.name + ".mp4"), None

        def write(bgr: np.ndarray) -> None:
            nonlocal writer
            if writer is None:
                writer = cv2.VideoWriter(str(staged), cv2.VideoWriter_fourcc(*"mp4v"), fps, bgr.shape[1::-1])
                if not writer.isOpened():
                    raise FacelmError("OpenCV cannot write an mp4v video here", path)
            writer.write(bgr)

        try:
            yield write
            if writer is not None:
                writer.release()
                os.replace(staged, tmp)
        finally:
            if writer is not None:
                writer.release()
            staged.unlink(missing_ok=True)


def predict_video(landmarker, path: Path, out: Path, options: VideoOptions = VideoOptions(), name: str | None = None,
                  lines: bool = False) -> int:
    """Track the video's faces with ``landmarker`` (:meth:`facelm.Landmarker.track`) and write
    ``<out>/<name>.landmarks.csv`` (+ ``<name>.overlay.mp4``, ``lines``: with the contours), both
    atomically -> frames read. ``name`` defaults to the video's stem."""
    name = path.stem if name is None else name
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise FacelmError("cannot open the video", path)
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    frames = 0
    try:
        with contextlib.ExitStack() as stack:
            table = stack.enter_context(atomic_open(out / f"{name}.landmarks.csv"))
            write = stack.enter_context(video_writer(out / f"{name}.overlay.mp4", fps)) if options.overlay else None
            table.write(csv_header())
            for frame in track_frames(landmarker, capture, "bgr", fps, options):
                table.write(csv_rows(frame.index, fps, frame.faces, landmarker.model_id))
                if write is not None:
                    drawn = draw_faces(np.ascontiguousarray(frame.image[:, :, ::-1]), frame.faces, lines=lines)
                    write(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
                frames += 1
            if frames == 0:
                raise FacelmError("no frame could be decoded from the video", path)
    finally:
        capture.release()
    return frames


def add_video_arguments(group) -> None:
    defaults = VideoOptions()
    group.add_argument("--no-smooth", dest="smooth", action="store_false", help="write the raw per-frame points")
    group.add_argument("--min-cutoff", type=float, default=defaults.min_cutoff,
                       help=f"One Euro cutoff at rest, Hz: lower = steadier still faces (default {defaults.min_cutoff})")
    group.add_argument("--beta", type=float, default=defaults.beta,
                       help=f"One Euro speed coefficient, Hz per face size per second: higher = less lag (default {defaults.beta})")
    group.add_argument("--d-cutoff", type=float, default=defaults.d_cutoff,
                       help=f"One Euro cutoff of the speed estimate, Hz (default {defaults.d_cutoff})")
    group.add_argument("--redetect-every", type=int, default=defaults.redetect_every,
                       help=f"run the detector every N frames besides when a face is lost; 0: only then (default {defaults.redetect_every})")


def video_options(args: argparse.Namespace) -> VideoOptions:
    """The video options of parsed ``facelm predict`` arguments, checked."""
    return VideoOptions(args.smooth, args.min_cutoff, args.beta, args.d_cutoff, args.redetect_every, args.overlay).checked()
