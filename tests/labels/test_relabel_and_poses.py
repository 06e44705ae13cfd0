"""facelm relabel (teacher points into a set) and facelm synthesize-poses (turned views from a BFM fit)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from facelm.data.annot import load_annot, save_annot
from facelm.data.folder import open_folder
from facelm.errors import FacelmError
from facelm.labels.pose_synthesis import synthesize_folder, synthesize_view
from facelm.labels.relabel import merge_labels, relabel


@pytest.fixture(scope="module")
def tddfa_dir(shared_data):
    return shared_data("..", "models", "3ddfa_v2")


@pytest.fixture(scope="module")
def small_300w(shared_data, tmp_path_factory):
    """Six 300-W faces as their own labelled folder (links, labels copied)."""
    src = shared_data("300w_train")
    names, labels = load_annot(src / "annot.pkl")
    out = tmp_path_factory.mktemp("small300w")
    for name in names[:6]:
        os.symlink(src / name, out / name)
    save_annot(out / "annot.pkl", names[:6], labels[:6])
    return out


def test_merge_modes():
    teacher, labels = np.ones((2, 68, 2)), np.zeros((2, 68, 2))
    assert (merge_labels(teacher, labels, "all", 0.5) == 1).all()
    jaw = merge_labels(teacher, labels, "jaw", 0.5)
    assert (jaw[:, :17] == 1).all() and (jaw[:, 17:] == 0).all()
    assert np.allclose(merge_labels(teacher, labels, "blend", 0.25), 0.25)
    with pytest.raises(FacelmError, match="needs the source's own labels"):
        merge_labels(teacher, None, "jaw", 0.5)


def test_relabel_writes_a_set_with_its_provenance(small_300w, tddfa_dir, tmp_path):
    out = tmp_path / "relabelled"
    subprocess.run([sys.executable, "-m", "facelm", "relabel", str(small_300w), str(out), "--teacher",
                    f"3ddfa_v2:{tddfa_dir},pixel_centres=1", "--points", "jaw"], check=True, capture_output=True)
    record = json.loads((out / "relabel.json").read_text())
    assert record["mode"] == "jaw" and record["n_images"] == 6 and "non-commercial" in record["terms"]
    new, old = open_folder(out), open_folder(small_300w)
    assert new.names == old.names
    assert np.array_equal(new.landmarks[:, 17:], old.landmarks[:, 17:])  # only the jaw moved
    moved = np.linalg.norm(new.landmarks[:, :17] - old.landmarks[:, :17], axis=-1).mean()
    assert 1 < moved < 40  # the conventions differ by ~12 px on the jaw, never by a whole face
    assert all((out / name).is_symlink() for name in new.names)  # no pixel copied


def test_relabel_refuses_to_overwrite_its_source(small_300w, tddfa_dir):
    with pytest.raises(FacelmError, match="overwrite its source"):
        relabel(small_300w, small_300w, f"3ddfa_v2:{tddfa_dir}")


def test_turned_view_moves_the_pixels_with_the_labels(small_300w, tddfa_dir):
    """Dots painted under the nose points follow them into the turned view."""
    from facelm.models.bfm import BFM68

    faces = open_folder(small_300w)
    fit = BFM68(tddfa_dir).fit(faces.landmarks[:1])
    image = np.full((384, 384, 3), 128, np.uint8)
    for x, y in fit.points3d[0, [27, 30, 33], :2]:  # the mesh's own vertices
        cv2.circle(image, (int(round(x)), int(round(y))), 5, (0, 0, 255), -1)
    delta = 30.0 if fit.yaw_deg[0] >= 0 else -30.0
    view, points = synthesize_view(image, fit.points3d[0], delta)
    moved = np.linalg.norm(points[[27, 30, 33]] - fit.points3d[0, [27, 30, 33], :2], axis=-1)
    assert (moved > 10).all()  # the view really turned
    for x, y in points[[27, 30, 33]]:
        b, g, r = view[int(round(y)), int(round(x))].astype(int)
        assert r > 180 and g < 80, (x, y, (b, g, r))


def test_synthesize_folder_turns_faces_into_the_range(small_300w, tddfa_dir, tmp_path):
    out = tmp_path / "poses"
    record = synthesize_folder(small_300w, out, tddfa_dir, views=2, yaw_range=(50, 80), seed=0)
    views = open_folder(out)
    assert len(views) == 12 and views.landmarks.shape == (12, 68, 2)
    assert 50 <= record["view_yaw_abs_mean"] <= 80
    from facelm.models.bfm import BFM68

    refit = BFM68(tddfa_dir).fit(views.landmarks)
    assert np.abs(refit.yaw_deg).min() > 35  # the rendered labels are turned faces


def test_relabel_by_a_bfm_fit_moves_only_the_jaw_onto_the_3d_model(small_300w, tddfa_dir, tmp_path):
    """No teacher: the BFM fitted to each face's own labels gives a 3D-convention jaw."""
    from facelm.challenge.provenance import set_sources

    out = tmp_path / "fitjaw"
    record = relabel(small_300w, out, None, "jaw", fit_bfm=tddfa_dir)
    assert record["teacher"] is None and record["fit_bfm"] == str(tddfa_dir.resolve())
    assert 0.5 < record["fit_residual_px"] < 15 and "non-commercial" in record["terms"]
    new, old = open_folder(out), open_folder(small_300w)
    assert np.array_equal(new.landmarks[:, 17:], old.landmarks[:, 17:])
    moved = np.linalg.norm(new.landmarks[:, :17] - old.landmarks[:, :17], axis=-1).mean()
    assert 0.3 < moved < 30
    assert "BFM fit" in set_sources(out)[0]["source"]


def test_relabel_takes_exactly_one_labeller(small_300w, tddfa_dir, tmp_path):
    with pytest.raises(FacelmError, match="one labeller"):
        relabel(small_300w, tmp_path / "a", f"3ddfa_v2:{tddfa_dir}", fit_bfm=tddfa_dir)
    with pytest.raises(FacelmError, match="one labeller"):
        relabel(small_300w, tmp_path / "b", None)


def test_a_bfm_fit_needs_labels(shared_data, tddfa_dir, tmp_path):
    unlabelled = tmp_path / "unlabelled"
    unlabelled.mkdir()
    src = shared_data("300w_train")
    for name in load_annot(src / "annot.pkl")[0][:2]:
        os.symlink(src / name, unlabelled / name)
    with pytest.raises(FacelmError, match="has none"):
        relabel(unlabelled, tmp_path / "out", None, "all", fit_bfm=tddfa_dir)
    assert not (tmp_path / "out").exists()
