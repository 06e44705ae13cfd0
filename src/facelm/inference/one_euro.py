"""The One Euro filter (Casiez, Roussel and Vogel, CHI 2012): smoothing that trades jitter for lag
by speed. A low-pass filter whose cutoff rises with the signal's (filtered) speed: still points
are smoothed hard (``min_cutoff``), fast ones barely (``beta``), so a still face stops trembling
and a moving one is not dragged behind.

Vectorised over any array shape (one filter per element, e.g. a face's (68, 2) points).
"""

from __future__ import annotations

import math

import numpy as np


def _alpha(dt: float, cutoff: np.ndarray | float) -> np.ndarray | float:
    """Smoothing factor of a first-order low-pass filter with ``cutoff`` Hz sampled every ``dt`` s."""
    tau = 1.0 / (2 * math.pi * np.asarray(cutoff, np.float64))
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """``filter(t, x, scale)``: the smoothed ``x`` at time ``t`` (seconds, increasing).

    ``min_cutoff`` (Hz): cutoff at rest, lower = smoother still points. ``beta``: how fast the
    cutoff rises with speed, in Hz per (``scale`` units per second): with ``scale`` = the face
    size, the same ``beta`` suits faces of any size in pixels. ``d_cutoff`` (Hz): cutoff of the
    speed estimate itself.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 10.0, d_cutoff: float = 1.0):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self._t: float | None = None
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None

    def __call__(self, t: float, x: np.ndarray, scale: float = 1.0) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self._t is None or t <= self._t:
            self._t, self._x, self._dx = t, x, np.zeros_like(x)
            return x.copy()
        dt = t - self._t
        a_d = _alpha(dt, self.d_cutoff)
        self._dx = a_d * (x - self._x) / dt + (1 - a_d) * self._dx
        a = _alpha(dt, self.min_cutoff + self.beta * np.abs(self._dx) / max(scale, 1e-9))
        self._x = a * x + (1 - a) * self._x
        self._t = t
        return self._x.copy()
