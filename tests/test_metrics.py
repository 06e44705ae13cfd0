"""NME normalisers, failure rate, AUC with hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from facelm.metrics import auc, ced_curve, failure_rate, nme


def _shape():
    pts = np.zeros((1, 68, 2))
    pts[0, :, 0] = np.linspace(0, 100, 68)
    pts[0, :, 1] = np.linspace(0, 25, 68)
    pts[0, 36] = [10, 10]
    pts[0, 45] = [50, 10]
    return pts


def test_normalisers():
    gt = _shape()
    pred = gt + np.array([3.0, 4.0])  # every point 5 px off
    assert nme(pred, gt, "384")[0] == pytest.approx(5 / 384)
    assert nme(pred, gt, "box")[0] == pytest.approx(5 / np.sqrt(100 * 25))
    assert nme(pred, gt, "io")[0] == pytest.approx(5 / 40)
    with pytest.raises(ValueError):
        nme(pred, gt, "face")


def test_failure_rate_auc_and_ced():
    errors = np.array([0.01, 0.02, 0.05, 0.2])
    assert failure_rate(errors, 0.1) == 0.25
    xs, ys = ced_curve(errors, 0.1, 11)
    assert ys[0] == 0 and ys[-1] == 0.75 and ys[2] == 0.5
    assert auc(np.zeros(5), 0.1) == pytest.approx(1.0, abs=1e-3)
    assert auc(np.full(5, 0.5), 0.1) == 0.0
    # uniform errors on [0, 0.1]: CED is the diagonal, area one half
    assert auc(np.linspace(0, 0.1, 10001), 0.1) == pytest.approx(0.5, abs=1e-3)
