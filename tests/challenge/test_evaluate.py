"""Per-region and per-yaw-bin NME of `facelm evaluate`."""

from __future__ import annotations

import numpy as np

from facelm.challenge.evaluate import REGIONS, region_nme, region_table, scores
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
