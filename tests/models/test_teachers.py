"""The 3DDFA_V2 teacher adapter and the 68-point BFM fit, on the real files and faces."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from facelm.data.folder import imread_rgb, list_images
from facelm.errors import FacelmError
from facelm.models.checkpoint import load_model
from facelm.models.tddfa import ROI_SIZE, fixed_roi
from facelm.models.teachers import parse_teacher_spec


@pytest.fixture(scope="module")
def tddfa_dir(shared_data):
    return shared_data("..", "models", "3ddfa_v2")


def test_evaluate_reproduces_the_published_score(tddfa_dir, aflw_val, tmp_path):
    """Through `facelm evaluate`, like any model: 1.63 +- 0.02 on all 199 aflw_val faces."""
    out = tmp_path / "scores.json"
    subprocess.run([sys.executable, "-m", "facelm", "evaluate", f"3ddfa_v2:{tddfa_dir}", str(aflw_val), "--out", str(out)],
                   check=True, capture_output=True)
    import json

    scores = json.loads(out.read_text())
    assert scores["n_images"] == 199
    assert abs(scores["nme_384"] - 1.63) <= 0.02, scores["nme_384"]
    frontal, mid, profile = (b["nme_384"] for b in scores["by_yaw"])
    assert frontal < mid and abs(profile - 2.00) < 0.05


def test_pixel_centres_and_second_pass_are_options(tddfa_dir):
    model, meta = load_model(f"3ddfa_v2:{tddfa_dir},passes=2,pixel_centres=1")
    assert model.passes == 2 and model.pixel_centres and meta["input_size"] == 384
    crop = torch.zeros(1, 3, 384, 384)
    plain, centred = (load_model(f"3ddfa_v2:{tddfa_dir}{o}")[0](crop)["landmarks"] for o in ("", ",pixel_centres=1"))
    half_roi_pixel = 0.5 * fixed_roi()[2] / ROI_SIZE  # the network's pixel indices are ROI pixels, not crop pixels
    assert torch.allclose(centred - plain, torch.full_like(plain, half_roi_pixel), atol=1e-6)


def test_pixel_centres_make_points_independent_of_the_roi_size(tddfa_dir, train_300w):
    """Resampling the same faces into a wider or narrower ROI must not move the points on average:
    with half a crop pixel instead of half a ROI pixel they drift with the ROI's scale (by 0.4 px)."""
    model, _ = load_model(f"3ddfa_v2:{tddfa_dir},pixel_centres=1")
    crops = [imread_rgb(train_300w / name) for name in list_images(train_300w)[:96]]
    images = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float()
    x, y, side = fixed_roi()
    with torch.no_grad():
        rois = [torch.tensor([[x, y, side * scale]]).expand(len(crops), 3) for scale in (0.8, 1.25)]
        points = [model._decode(model._params(images, roi), roi)[0][..., :2] for roi in rois]
    drift_px = ((points[1] - points[0]).mean(dim=(0, 1)) * 384).abs()
    assert float(drift_px.max()) < 0.25, drift_px


@pytest.mark.parametrize("spec", ["3ddfa_v2", "3ddfa_v2:x,passes", "3ddfa_v2:x,colour=1", "nope:x"])
def test_malformed_specs_are_one_line_errors(spec):
    with pytest.raises(FacelmError):
        parse_teacher_spec(spec)


def test_missing_weights_name_the_file(tmp_path):
    with pytest.raises(FacelmError, match="not found"):
        load_model(f"3ddfa_v2:{tmp_path}")


def test_bfm_fit_recovers_labels_and_pose(tddfa_dir, aflw_val):
    """aflw_val's labels are BFM keypoints: the fit reproduces them to about a pixel; the fitted yaw
    agrees in sign with the solvePnP estimate on clearly turned faces."""
    from facelm.data.annot import load_annot
    from facelm.models.bfm import BFM68
    from facelm.models.pose import pose_from_landmarks

    _, labels = load_annot(aflw_val / "annot.pkl")
    fit = BFM68(tddfa_dir).fit(labels)
    assert fit.residual.mean() < 1.2, fit.residual.mean()
    pnp = np.degrees(pose_from_landmarks(labels, 384)[:, 0])
    turned = np.abs(pnp) > 30
    assert (np.sign(fit.yaw_deg[turned]) == np.sign(pnp[turned])).mean() > 0.95
    assert fit.points3d.shape == (199, 68, 3)
    # the rotation is a proper rotation
    assert np.allclose(np.linalg.det(fit.rotation), 1, atol=1e-6)
