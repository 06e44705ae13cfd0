"""Every verb that builds a training set keeps the evaluation faces out: relabel, synthesize-poses and prepare too
(photo-set's own test is in test_photo_set.py)."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from facelm.cli import main
from facelm.data.annot import load_annot, save_annot
from facelm.data.near_duplicates import MIN_INLIERS
from facelm.landmarks68 import flip_horizontal

HIDDEN = "image00013.jpg"  # the aflw_val face each test hides, mirrored and rescaled


def mirrored_copy(aflw_val, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The hidden face mirrored and rescaled, pasted into a grey 520 x 520 scene -> (scene, its 68 points)."""
    names, points = load_annot(aflw_val / "annot.pkl")
    crop = cv2.imread(str(aflw_val / HIDDEN))[:, ::-1]
    labels = flip_horizontal(points[names.index(HIDDEN)], crop.shape[1])
    side = round(crop.shape[1] * scale)
    scene = np.full((520, 520, 3), 100, np.uint8)
    scene[40:40 + side, 60:60 + side] = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)
    return scene, labels * side / crop.shape[1] + [60, 40]


def raw_copy(aflw_val, raw, scale: float):
    """A 300-W style folder (``copy.jpg`` + ``copy.pts``) holding :func:`mirrored_copy` -> its path."""
    raw.mkdir()
    scene, labels = mirrored_copy(aflw_val, scale)
    cv2.imwrite(str(raw / "copy.jpg"), scene)
    (raw / "copy.pts").write_text("".join(f"{x + 0.5:.2f} {y + 0.5:.2f}\n" for x, y in labels))  # 300-W: 1-based centres
    return raw


def test_relabel_and_pose_synthesis_refuse_a_source_holding_an_evaluation_face(shared_data, aflw_val, tmp_path, capsys):
    train = shared_data("300w_train")
    names, points = load_annot(train / "annot.pkl")
    src = tmp_path / "src"
    src.mkdir()
    for name in names[:2]:
        shutil.copy(train / name, src / name)
    save_annot(src / "annot.pkl", names[:2], points[:2])
    bfm = str(shared_data("..", "models", "3ddfa_v2"))
    args = ["relabel", str(src), str(tmp_path / "clean"), "--fit-bfm", bfm, "--eval", str(aflw_val)]
    assert main(args) == 0
    near = json.loads((tmp_path / "clean" / "relabel.json").read_text())["near_duplicates"]
    assert near["closest_inliers"] < MIN_INLIERS and near["evaluation_sets"] == [str(aflw_val.resolve())]

    framed = tmp_path / "framed"
    assert main(["prepare", str(raw_copy(aflw_val, tmp_path / "raw", 0.9)), str(framed), "--workers", "1"]) == 0  # framed like a challenge crop
    shutil.copy(framed / "copy.jpg", src / "copy.jpg")
    copy_points = load_annot(framed / "annot.pkl")[1]
    save_annot(src / "annot.pkl", names[:2] + ["copy.jpg"], np.concatenate([points[:2], copy_points]).astype(np.float32))
    capsys.readouterr()
    assert main(["relabel", str(src), str(tmp_path / "out"), "--fit-bfm", bfm, "--eval", str(aflw_val)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and HIDDEN in err and "copy.jpg" in err and "near-duplicate" in err
    assert not (tmp_path / "out").exists()
    # the turned views of such a set are refused the same way
    assert main(["synthesize-poses", str(src), str(tmp_path / "views"), "--bfm", bfm, "--eval", str(aflw_val)]) == 2
    assert HIDDEN in capsys.readouterr().err and not (tmp_path / "views").exists()


def test_prepare_refuses_a_raw_photo_of_an_evaluation_face(aflw_val, tmp_path, capsys):
    raw = raw_copy(aflw_val, tmp_path / "raw", 1.1)
    assert main(["prepare", str(raw), str(tmp_path / "out"), "--workers", "1", "--eval", str(aflw_val)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and HIDDEN in err and "near-duplicate" in err
    assert not (tmp_path / "out").exists()
