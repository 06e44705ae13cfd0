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
