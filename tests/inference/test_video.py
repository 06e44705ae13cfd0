"""Video: per-frame CSV + overlay, tracking that follows a known motion, One Euro smoothing lowers jitter."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from facelm.cli import main
from facelm.data.annot import load_annot
from facelm.inference.detectors.registry import create_detector
from facelm.inference.framing import BoxCalibration, landmark_frames
from facelm.inference.landmarker import Landmarker
from facelm.inference.one_euro import OneEuroFilter
from facelm.inference.video import REFRAME, YOUNG_FRAMES, FaceTracker, VideoOptions, predict_video
from facelm.landmarks68 import box_size, mean_shape
from test_predict import models  # noqa: F401 (fixture)

torch.set_num_threads(1)
cv2.setNumThreads(1)

STILL, MOVING, FPS = 12, 16, 25
STEP = np.array([2.0, 1.0])  # px per frame while moving
PASTED_AT = np.array([80, 30])  # the crop's top-left corner in the still frames


def true_shift(frames: int) -> np.ndarray:
    """(frames, 2) offset of the pasted face: still, then STEP per frame, then still."""
    moved = np.clip(np.arange(frames) - STILL, 0, MOVING)
    return moved[:, None] * STEP


def make_clip(path, crop: np.ndarray, frames: int, noise: float = 4.0) -> None:
    """A 640x480 clip of a still crop pasted on grey with sensor noise, moving by ``true_shift``."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (640, 480))
    rng = np.random.default_rng(0)
    for shift in true_shift(frames):
        canvas = np.full((480, 640, 3), 110.0)
        x, y = PASTED_AT + shift.astype(int)
        canvas[y : y + 384, x : x + 384] = crop[:, :, ::-1]
        writer.write(np.clip(canvas + rng.normal(0, noise, canvas.shape), 0, 255).astype(np.uint8))
    writer.release()


def read_csv(path) -> tuple[np.ndarray, np.ndarray]:
    """-> (frame, face) int (R, 2), points (R, 68, 2)."""
    table = np.genfromtxt(path, delimiter=",", names=True, dtype=None, encoding=None)
    points = np.stack([np.stack([table[f"x{i}"], table[f"y{i}"]], -1) for i in range(68)], 1)
    return np.stack([table["frame"], table["face"]], 1), points


def jitter(points: np.ndarray) -> float:
    """Mean frame-to-frame movement of the 68 points (px) over a still stretch."""
    return float(np.linalg.norm(np.diff(points, axis=0), axis=-1).mean())


def test_one_euro_smooths_still_noise_and_follows_a_ramp():
    rng = np.random.default_rng(0)
    t = np.arange(100) / 30
    still = 5 + rng.normal(0, 0.5, (100, 3))
    filt = OneEuroFilter(min_cutoff=1.0, beta=0.5)
    smoothed = np.stack([filt(ti, x) for ti, x in zip(t, still)])
    assert np.abs(np.diff(smoothed[10:], axis=0)).mean() < 0.3 * np.abs(np.diff(still[10:], axis=0)).mean()
    ramp = 100 * t[:, None] + np.zeros(3)
    filt = OneEuroFilter(min_cutoff=1.0, beta=0.5)
    followed = np.stack([filt(ti, x) for ti, x in zip(t, ramp)])
    assert np.abs(followed[-1] - ramp[-1]).max() < 3  # a fast ramp lags little (the cutoff rose)


class ShrinkingModel:
    """A blind model with a systematic error: the mean shape at the training framing, 3 % too small."""

    def predict(self, crops, batch_size=64):
        shape = mean_shape()
        centre = shape.mean(0)
        return np.repeat(((shape - centre) * 0.97 + centre)[None], len(crops), 0).astype(np.float32)


class NoDetector:
    """A detector that never runs (the track below is established): only its calibration is read, for the faces' boxes."""

    calibration = BoxCalibration(0.0, 0.0, 1.0)

    def detect_batch(self, images):
        raise AssertionError("the detector ran")


def test_a_models_systematic_error_does_not_feed_back_through_the_crop():
    """Re-framing each crop from the last points would shrink this track 3 % per frame (0.97^30 = 0.40);
    the held crop keeps it at the size of its first prediction."""
    tracker = FaceTracker(ShrinkingModel(), detector=NoDetector(), options=VideoOptions(smooth=False, redetect_every=0), fps=25)
    start = mean_shape() * 0.5 + 100
    tracker.tracks = [tracker._new_track(start, tuple(part[0] for part in landmark_frames(start[None])))]
    tracker.tracks[0].born = -YOUNG_FRAMES  # an established track: no detector check (there is no detector)
    # a still, textured frame: the optical flow finds every point where it was (presence score 1)
    frame = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    sizes = [float(box_size(tracker.update(frame, i)[0].landmarks)) for i in range(30)]
    assert abs(sizes[-1] / sizes[0] - 1) < 0.01 and sizes[0] / float(box_size(start)) > 0.9
    tracker.tracks[0].settled = False  # as after a move: the face at rest is centred once, not again
    after = [float(box_size(tracker.update(frame, i)[0].landmarks)) for i in range(30, 60)]
    assert 0.9 < after[-1] / sizes[-1] < 0.99 and after[-1] == after[-20]


def test_video_writes_csv_and_overlay(aflw_val, models, tmp_path):  # noqa: F811
    clip = tmp_path / "clip.mp4"
    make_clip(clip, cv2.imread(str(aflw_val / "image00013.jpg"))[:, :, ::-1], 8)
    assert main(["predict", str(clip), "--model", str(models / "m.onnx"), "--out", str(tmp_path / "out"),
                 "--min-cutoff", "0.5"]) == 0
    ids, points = read_csv(tmp_path / "out" / "clip.landmarks.csv")
    assert ids[:, 0].tolist() == list(range(8)) and set(ids[:, 1]) == {0} and points.shape == (8, 68, 2)
    table = np.genfromtxt(tmp_path / "out" / "clip.landmarks.csv", delimiter=",", names=True, dtype=None, encoding=None)
    visible = np.stack([table[f"v{i}"] for i in range(68)], 1)
    assert visible.shape == (8, 68) and set(np.unique(visible)) <= {0, 1}
    overlay = cv2.VideoCapture(str(tmp_path / "out" / "clip.overlay.mp4"))
    assert overlay.get(cv2.CAP_PROP_FRAME_COUNT) == 8 and overlay.get(cv2.CAP_PROP_FRAME_WIDTH) == 640
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip.landmarks.csv", "clip.overlay.mp4"]


def test_bad_video_and_options_are_one_line(models, tmp_path, capsys):  # noqa: F811
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    assert main(["predict", str(bad), "--model", str(models / "m.onnx"), "--out", str(tmp_path / "out")]) == 2
    assert "bad.mp4" in capsys.readouterr().err
    assert main(["predict", str(bad), "--model", str(models / "m.onnx"), "--beta", "-1"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory, shared_data):
    """A quickly trained real model (val NME ~5.7, about 4 minutes on 2 idle cores): the tracking test
    needs points that follow the face."""
    train, val = shared_data("300w_train"), shared_data("aflw_val")  # val: reported only
    out = tmp_path_factory.mktemp("trained")
    subprocess.run([sys.executable, "-m", "facelm", "train", "--data", str(train), "--val", str(val), "--backbone", "mobilenetv3_small_100",
                    "--head", "heatmap", "--epochs", "20", "--size", "128", "--threads", "2", "--workers", "1",
                    "--results-dir", str(out / "results"), "--out", str(out / "run")], check=True)
    return out / "run" / "model.pt"


@pytest.mark.slow
def test_tracked_landmarks_follow_a_known_motion_and_smoothing_lowers_jitter(aflw_val, trained_model, tmp_path):
    """Errors against the face's true points (its aflw_val labels moved with the paste), next to the
    same model's error on the crop itself: tracking must neither drift on a still face nor lose a
    moving one, and once the face stops it must be back near the direct crop's error."""
    frames = STILL + MOVING + STILL
    clip = tmp_path / "clip.mp4"
    crop = cv2.imread(str(aflw_val / "image00013.jpg"))[:, :, ::-1]
    make_clip(clip, crop, frames)
    names, labels = load_annot(aflw_val / "annot.pkl")
    label = np.asarray(labels[names.index("image00013.jpg")], np.float64)
    truth = label[None] + PASTED_AT + true_shift(frames)[:, None]
    landmarker = Landmarker(trained_model, create_detector())
    predictor = landmarker.predictor
    direct = float(np.linalg.norm(predictor.predict(np.ascontiguousarray(crop)[None])[0] - label, axis=1).mean())
    band = REFRAME["centre"] * float(box_size(label))  # how far the face may move before its crop follows
    runs = {}
    for smooth in (False, True):
        out = tmp_path / f"smooth{smooth}"
        assert predict_video(landmarker, clip, out, VideoOptions(smooth=smooth)) == frames
        ids, runs[smooth] = read_csv(out / "clip.landmarks.csv")
        assert ids[:, 0].tolist() == list(range(frames)) and set(ids[:, 1]) == {0}  # one face, one id throughout
        error = np.linalg.norm(runs[smooth] - truth, axis=2).mean(1)  # px per frame, mean over the 68 points
        print(f"smooth={smooth}: mean point error {error[0]:.2f} px at the start (direct crop {direct:.2f}), "
              f"largest {error.max():.2f} px, {error[-4:].max():.2f} px after a {true_shift(frames)[-1].tolist()} px move")
        assert error[STILL - 4 : STILL].mean() < error[:4].mean() + 1.5  # no drift on the still face
        assert error.max() < direct + band  # follows the moving face within the dead band
        assert error[-4:].max() < direct + band / 2  # and settles near it
    raw, smoothed = (jitter(runs[s][1:STILL]) for s in (False, True))
    print(f"jitter on the still face: raw {raw:.3f} px/frame, One Euro {smoothed:.3f} px/frame")
    assert smoothed < 0.7 * raw


def test_point_flow_follows_a_shift_and_scores_points_left_behind():
    """The flow recovers a known shift of a textured frame; points that moved with it score 1, points
    left where they were (a model guessing near the old crop centre) score 0."""
    from facelm.inference.point_flow import agreement, face_motion, flow_points, move_frames

    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.integers(0, 256, (480, 640), dtype=np.uint8), (5, 5), 0)
    shift = np.array([7.0, -3.0])
    moved_frame = np.roll(texture, (-3, 7), axis=(0, 1))
    points = (mean_shape() * 0.5 + 150)[None].astype(np.float64)
    sizes = landmark_frames(points)[1]
    flowed, kept = flow_points(texture, moved_frame, points, sizes)
    assert kept.mean() > 0.9
    np.testing.assert_allclose(np.median(flowed[0] - points[0], axis=0), shift, atol=0.2)
    centres, sizes, rolls = move_frames(landmark_frames(points), face_motion(points, flowed, kept, sizes))
    np.testing.assert_allclose(centres[0] - landmark_frames(points)[0][0], shift, atol=0.3)
    assert agreement(points + shift, flowed, kept, sizes)[0] > 0.9
    assert agreement(points + 4 * shift, flowed, kept, sizes)[0] < 0.1
