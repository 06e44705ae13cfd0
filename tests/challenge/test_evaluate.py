"""Per-region and per-yaw-bin NME of `facelm evaluate`."""

from __future__ import annotations

import numpy as np

from facelm.challenge.evaluate import REGIONS, fitted_yaw_deg, region_nme, region_table, scores
from facelm.landmarks68 import mean_shape


def test_regions_cover_the_68_points_once():
    assert sorted(i for idx in REGIONS.values() for i in idx) == list(range(68))


def test_region_nme_puts_an_error_in_its_region_only():
    gt = np.repeat(mean_shape(384)[None], 4, axis=0).astype(np.float32)
    pred = gt.copy()
    pred[:, REGIONS["mouth"], 0] += 3.84  # 1 % of the crop on every mouth point
    per_region = region_nme(pred, gt)
    assert abs(per_region["mouth"] - 1.0) < 1e-5
    assert all(per_region[r] == 0 for r in REGIONS if r != "mouth")
    result = scores(pred, gt)
    assert abs(result["nme_384"] - 20 / 68) < 1e-5  # 20 mouth points of 68
    table = region_table(result)
    assert table[0].startswith("| yaw") and table[-1].startswith("| all | 4 | 0.29 |")
    assert len(table) == 2 + 3 + 1


def test_faces_binned_by_a_3d_fit_of_their_labels(shared_data):
    """BFM faces turned 10, 45 and 80 degrees: the fit's bins are the true ones, beside solvePnP's."""
    from facelm.models.bfm import BFM68

    face_model = shared_data("..", "models", "3ddfa_v2")
    bfm = BFM68(face_model)
    points = bfm.shape(np.repeat(bfm.param_mean[None, 12:], 3, axis=0))
    gt = []
    for yaw in np.radians([10.0, 45.0, 80.0]):
        c, s = np.cos(yaw), np.sin(yaw)
        turned = points[0] @ np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]])
        flat = turned[:, :2] * np.array([1.0, -1.0])
        gt.append((flat - flat.mean(0)) / np.ptp(flat[:, 1]) * 200 + 192)
    gt = np.array(gt, np.float32)
    result = scores(gt + 1.0, gt, fitted_yaw=fitted_yaw_deg(gt, face_model))
    assert [row["n_images"] for row in result["by_yaw_3d_fit"]] == [1, 1, 1]
    assert len(result["by_yaw"]) == 3 and "by_yaw_3d_fit" not in scores(gt, gt)
    table = region_table(result, "by_yaw_3d_fit")
    assert table[0].startswith("| yaw (3D fit of the labels)") and table[-1].startswith("| all | 3 |")
