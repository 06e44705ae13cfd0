"""Landmark error metrics. Every NME states its normaliser:

* ``"384"`` -- the challenge's: mean point error / 384 (the crop side; use the frame's side
  for other frames via ``size``);
* ``"box"`` -- / sqrt(w * h) of the ground-truth points' box (size-invariant; 300-W/AFLW style);
* ``"io"``  -- / the outer-eye-corner distance (points 36-45; 300-W's inter-ocular NME).

Functions return per-image fractions; multiply by 100 to report.
"""

from __future__ import annotations

import numpy as np

from facelm.landmarks68 import CHALLENGE_SIZE, box_size, interocular

NORMS = ("384", "box", "io")


def point_errors(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(N, 68) Euclidean error of each point."""
    return np.linalg.norm(np.asarray(pred, np.float64) - np.asarray(gt, np.float64), axis=-1)


def nme(pred: np.ndarray, gt: np.ndarray, norm: str = "384", size: float = CHALLENGE_SIZE) -> np.ndarray:
    """Per-image NME (fraction) of (N, 68, 2) predictions against ground truth."""
    errors = point_errors(pred, gt).mean(axis=-1)
    if norm == "384":
        return errors / size
    if norm == "box":
        return errors / np.maximum(box_size(gt), 1e-6)
    if norm == "io":
        return errors / np.maximum(interocular(gt), 1e-6)
    raise ValueError(f"unknown NME normaliser {norm!r}; choose one of {NORMS}")


def ced_curve(nmes: np.ndarray, threshold: float = 0.1, steps: int = 201) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative error distribution: thresholds in [0, threshold] and the fraction of images at or below each."""
    xs = np.linspace(0.0, threshold, steps)
    values = np.sort(np.asarray(nmes, np.float64))
    return xs, np.searchsorted(values, xs, side="right") / max(len(values), 1)


def failure_rate(nmes: np.ndarray, threshold: float = 0.1) -> float:
    """Fraction of images with NME above ``threshold``."""
    return float(np.mean(np.asarray(nmes) > threshold)) if len(nmes) else 0.0


def auc(nmes: np.ndarray, threshold: float = 0.1, steps: int = 1001) -> float:
    """Area under the CED curve up to ``threshold``, normalised to [0, 1]."""
    xs, ys = ced_curve(nmes, threshold, steps)
    return float(np.trapezoid(ys, xs) / threshold)
