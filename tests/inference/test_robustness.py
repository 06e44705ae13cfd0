"""Inputs off the beaten path, with the shipped model and the default detector: false faces, given boxes,
input types, turned photos."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

import facelm
from facelm.cli import main
from facelm.data.prepare import read_points
from facelm.errors import FacelmError
from facelm.landmarks68 import bbox

cv2.setNumThreads(1)
#: a 300w_raw_sample photo with a hand YuNet scores 0.59 (at about x 493, y 991)
HAND_PHOTO = "1587030290_1"


@pytest.fixture(scope="module")
def lm():
    return facelm.Landmarker()


@pytest.fixture(scope="module")
def hand_photo(shared_data):
    return shared_data("300w_raw_sample") / f"{HAND_PHOTO}.jpg"


def _near(faces, point, radius=100.0) -> bool:
    return any(np.linalg.norm((f.box[:2] + f.box[2:]) / 2 - point) < radius for f in faces)


def test_min_score_drops_the_hand_and_keeps_the_labelled_face(lm, hand_photo):
    image = cv2.imread(str(hand_photo))
    labelled = bbox(read_points(hand_photo.with_suffix(".pts")))
    default = lm(image)
    assert all(f.score >= lm.min_score for f in default)
    assert not _near(default, (493, 991)) and _near(default, (labelled[:2] + labelled[2:]) / 2)
    low = facelm.Landmarker(min_score=0.5)(image)
    assert _near(low, (493, 991)) and len(low) == len(default) + 1
    with pytest.raises(FacelmError, match="min_score must be a number from 0 to 1"):
        facelm.Landmarker(min_score=1.5)


def test_cli_min_score(hand_photo, tmp_path, capsys):
    for score, out in ((None, "default"), ("0.5", "low")):
        extra = [] if score is None else ["--min-score", score]
        assert main(["predict", str(hand_photo), "--out", str(tmp_path / out), "--no-overlay", *extra]) == 0
    count = {out: len(json.loads((tmp_path / out / f"{HAND_PHOTO}.json").read_text())["faces"]) for out in ("default", "low")}
    assert count["low"] == count["default"] + 1
    assert main(["predict", str(hand_photo), "--out", str(tmp_path / "bad"), "--min-score", "7"]) == 2
    assert "min_score must be a number from 0 to 1" in capsys.readouterr().err


@pytest.fixture(scope="module")
def photo(shared_data):
    """A 300w_raw_sample photo with three faces, BGR, scaled to 1024 px wide."""
    image = cv2.imread(str(shared_data("300w_raw_sample") / "1130084326_1.jpg"))
    return cv2.resize(image, (1024, round(image.shape[0] * 1024 / image.shape[1])), interpolation=cv2.INTER_AREA)


def test_returned_boxes_give_the_detected_points(lm, photo):
    detected = lm(photo)
    assert len(detected) == 3
    again = lm(photo, boxes=detected)  # Face objects: their boxes and keypoints, exactly as detected
    np.testing.assert_allclose([f.landmarks for f in again], [f.landmarks for f in detected], atol=1e-3)
    assert all(f.score is None for f in again)
    plain = lm(photo, boxes=np.stack([f.box for f in detected]))  # bare boxes: no keypoints, the second pass sets the roll
    for got, want in zip(plain, detected):
        size = np.sqrt(np.prod(np.ptp(want.landmarks, axis=0)))
        assert np.linalg.norm(got.landmarks - want.landmarks, axis=1).mean() < 0.02 * size
        assert abs(got.confidence - want.confidence) < 0.1 and np.array_equal(got.box, want.box)


@pytest.mark.parametrize("box", [[300, 300, 200, 400], [300, 300, 300, 400], [0, 0, np.nan, 10], [1, 2, 3]])
def test_inverted_or_degenerate_boxes_are_refused(lm, photo, box):
    with pytest.raises(FacelmError, match=r"image 0: expected (a face box x0,y0,x1,y1 with x1 > x0|face boxes x0, y0, x1, y1)"):
        lm(photo, boxes=np.array([box], np.float32))


def test_input_types(lm, photo):
    from PIL import Image

    rgb = np.ascontiguousarray(photo[:, :, ::-1])
    want = np.stack([f.landmarks for f in lm(photo)])
    for image in (Image.fromarray(rgb), Image.fromarray(rgb).convert("RGBA")):
        np.testing.assert_allclose(np.stack([f.landmarks for f in lm(image)]), want, atol=1e-3)
    np.testing.assert_allclose(np.stack([f.landmarks for f in lm(np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)]))]),
                               want, atol=1e-3)  # BGRA
    grey = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
    from_pil, from_array = lm(Image.fromarray(grey)), lm(grey)
    assert len(from_array) == 3
    np.testing.assert_allclose([f.landmarks for f in from_pil], [f.landmarks for f in from_array], atol=1e-3)
    with pytest.raises(FacelmError, match="image 0 is None .*cv2.imread"):
        lm(None)
    with pytest.raises(FacelmError, match=r"image 0 is a path \('photo.jpg'\)"):
        lm("photo.jpg")
    with pytest.raises(FacelmError, match="expected a uint8 array .* float64"):
        lm(photo.astype(np.float64))


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_a_turned_photo_keeps_its_points_on_the_face(lm, photo, turns):
    """The photo turned by quarter turns (no EXIF): every face found has the upright points, turned.
    (The upright detector misses some sideways faces: found ones must be right, not all found.)"""
    from facelm.inference.detectors.detection import from_quarter_turn

    upright = lm(photo)
    turned = lm(np.ascontiguousarray(np.rot90(photo, turns)))
    assert turned
    for face in turned:
        points = from_quarter_turn(face.landmarks, turns, photo.shape)
        want = min(upright, key=lambda f: np.linalg.norm(f.landmarks.mean(0) - points.mean(0))).landmarks
        iod = np.linalg.norm(want[36] - want[45])
        assert np.linalg.norm(points - want, axis=1).mean() < 0.1 * iod


def test_a_folder_run_takes_every_opencv_format_and_names_what_it_skipped(photo, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    small = cv2.resize(photo, (512, round(photo.shape[0] * 512 / photo.shape[1])))
    for suffix in (".jpg", ".png", ".webp", ".bmp", ".tif"):
        cv2.imwrite(str(folder / f"photo{suffix}"), small)
    (folder / "notes.txt").write_text("not an image")
    assert main(["predict", str(folder), "--out", str(tmp_path / "out"), "--no-overlay"]) == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == [f"photo{s}.json" for s in (".bmp", ".jpg", ".png", ".tif", ".webp")]
    assert all(len(json.loads((tmp_path / "out" / name).read_text())["faces"]) == 3 for name in written)
    assert "skipped 1 files in the folders that are not images or videos (notes.txt, ...)" in capsys.readouterr().out
