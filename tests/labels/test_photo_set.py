"""facelm photo-set: photos -> a teacher-labelled training set, and the guard against evaluation copies."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from facelm.data.annot import load_annot
from facelm.errors import FacelmError
from facelm.data.near_duplicates import MIN_INLIERS, EvaluationFaces
from facelm.labels.photo_set import build_photo_set, name_tags

pytest.importorskip("yuface", reason="the default detector's wheel (CPython 3.11, Linux x86_64)")


@pytest.fixture
def teacher(shared_data) -> str:
    return f"3ddfa_v2:{shared_data('..', 'models', '3ddfa_v2')},pixel_centres=1,jitter=5"


@pytest.fixture
def kdef_sample(shared_data, tmp_path) -> Path:
    """Four KDEF photos: straight, half and full profile."""
    source = shared_data("kdef_photos")
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("AF01NES.JPG", "AF01NEHL.JPG", "AF01NEHR.JPG", "AF01NEFR.JPG"):
        matches = [p for p in source.iterdir() if p.name.upper() == name]
        shutil.copy(matches[0], folder / matches[0].name)
    return folder


def hide_copy(crop_path: Path, out: Path) -> None:
    """A photo with the evaluation face inside: mirrored, shrunk to 80 % and pasted off-centre in a larger scene."""
    crop = cv2.imread(str(crop_path))[:, ::-1]
    small = cv2.resize(crop, (307, 307), interpolation=cv2.INTER_AREA)
    scene = np.full((520, 640, 3), 90, np.uint8)
    scene[150:457, 260:567] = small
    cv2.imwrite(str(out), scene, [cv2.IMWRITE_JPEG_QUALITY, 92])


def test_photos_become_a_labelled_training_set(kdef_sample, teacher, aflw_val, tmp_path):
    record = build_photo_set(kdef_sample, tmp_path / "set", teacher, [aflw_val])
    names, landmarks = load_annot(tmp_path / "set" / "annot.pkl")
    assert record["n_faces"] == len(names) == 4 and record["labels"] == "teacher"
    assert landmarks.shape == (4, 68, 2)
    # framed like a challenge crop: the 68-point box about half the side, centred near (192, 223)
    box = landmarks.max(1) - landmarks.min(1)
    assert np.all(np.sqrt(box.prod(1)) > 150) and np.all(np.sqrt(box.prod(1)) < 240)
    rows = list(csv.DictReader((tmp_path / "set" / "photos.csv").open()))
    assert [r["view"] for r in rows] == ["FR", "HL", "HR", "S"] and all(r["expression"] == "NE" for r in rows)
    yaw = {r["view"]: abs(float(r["yaw"])) for r in rows}
    assert yaw["S"] < 20 < yaw["HL"] and yaw["FR"] > 50  # the teacher's pose follows the file name's view
    saved = json.loads((tmp_path / "set" / "photo_set.json").read_text())
    assert saved["near_duplicates"]["closest_inliers"] < MIN_INLIERS
    assert "non-commercial" in saved["terms"]


def test_a_hidden_copy_of_an_evaluation_face_stops_the_build(kdef_sample, teacher, aflw_val, tmp_path):
    hide_copy(aflw_val / "image00118.jpg", kdef_sample / "holiday.jpg")
    with pytest.raises(FacelmError) as err:
        build_photo_set(kdef_sample, tmp_path / "set", teacher, [aflw_val])
    message = str(err.value)
    assert "holiday.jpg" in message and "image00118.jpg" in message and "\n" not in message
    assert not (tmp_path / "set").exists()  # nothing written


def test_copies_match_and_other_faces_do_not(aflw_val, train_300w):
    evaluation = EvaluationFaces.of_folders([aflw_val])
    grey = cv2.imread(str(aflw_val / "image00118.jpg"), cv2.IMREAD_GRAYSCALE)
    rescaled = cv2.warpAffine(grey, np.float32([[1.06, 0, -14], [0, 1.06, -9]]), (384, 384))[:, ::-1]
    copy = evaluation.closest(np.ascontiguousarray(rescaled))
    assert copy.inliers >= MIN_INLIERS and copy.evaluation_image.name == "image00118.jpg"
    others = [evaluation.closest(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)).inliers for p in sorted(train_300w.glob("*.jpg"))[:20]]
    assert max(others) < MIN_INLIERS


def test_name_tags():
    assert name_tags("BM23SUFL.JPG") == {"view": "FL", "expression": "SU"}
    assert name_tags("Aaron_Eckhart_0001.jpg") == {"view": "", "expression": ""}
