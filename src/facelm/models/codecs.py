"""Codecs: the one place that turns landmarks into training targets and head outputs back
into landmarks (the idea of mmpose's codecs), so heatmap and regression heads share one
pipeline and one coordinate convention.

Coordinates are normalised, ``u = x / S``. A heatmap of width ``W`` has cell ``j``
covering ``[j, j+1) / W`` with its centre at ``(j + 0.5) / W`` -- float arithmetic
throughout, no integer division, so decoding a target returns its landmark exactly
(up to the Gaussian's truncation at the border).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cell_centres(n: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Normalised centres of ``n`` heatmap cells: ``(arange(n) + 0.5) / n``."""
    return (torch.arange(n, device=device, dtype=dtype) + 0.5) / n


class HeatmapCodec:
    """Gaussian heatmap targets and soft-argmax decoding.

    ``encode`` gives a per-landmark probability map (a normalised Gaussian of
    ``sigma`` cells); ``decode`` takes logits, applies a spatial softmax and returns the
    expected cell centre (soft-argmax), which is differentiable, sub-pixel and batched.
    """

    def __init__(self, height: int, width: int, sigma: float = 1.5):
        self.height, self.width, self.sigma = int(height), int(width), float(sigma)

    def encode(self, landmarks: torch.Tensor) -> torch.Tensor:
        """``(B, K, 2)`` normalised points -> ``(B, K, H, W)`` target distributions (sum 1)."""
        ys = cell_centres(self.height, landmarks.device) * self.height
        xs = cell_centres(self.width, landmarks.device) * self.width
        px = landmarks[..., 0:1] * self.width  # (B, K, 1) in cell units
        py = landmarks[..., 1:2] * self.height
        gx = torch.exp(-((xs.view(1, 1, -1) - px) ** 2) / (2 * self.sigma**2))  # (B, K, W)
        gy = torch.exp(-((ys.view(1, 1, -1) - py) ** 2) / (2 * self.sigma**2))  # (B, K, H)
        heat = gy.unsqueeze(-1) * gx.unsqueeze(-2)
        return heat / heat.sum(dim=(-2, -1), keepdim=True).clamp_min(1e-12)

    def decode(self, logits: torch.Tensor) -> torch.Tensor:
        """``(B, K, H, W)`` logits -> ``(B, K, 2)`` normalised soft-argmax coordinates."""
        b, k, h, w = logits.shape
        prob = F.softmax(logits.float().reshape(b, k, h * w), dim=-1).reshape(b, k, h, w)
        xs = cell_centres(w, logits.device)
        ys = cell_centres(h, logits.device)
        x = (prob.sum(dim=-2) * xs).sum(dim=-1)
        y = (prob.sum(dim=-1) * ys).sum(dim=-1)
        return torch.stack([x, y], dim=-1)

    def heatmap_loss(self, logits: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        """Cross-entropy between the Gaussian target and the spatial softmax of ``logits``."""
        b, k, h, w = logits.shape
        target = self.encode(landmarks).reshape(b, k, h * w)
        log_prob = F.log_softmax(logits.float().reshape(b, k, h * w), dim=-1)
        return -(target * log_prob).sum(dim=-1).mean()


class RegressionCodec:
    """Direct regression: ``2K`` numbers are offsets from a reference (mean) shape."""

    def __init__(self, num_points: int = 68):
        self.num_points = num_points

    def decode(self, raw: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """``(B, 2K)`` head output + ``(K, 2)`` reference -> ``(B, K, 2)`` normalised points."""
        return raw.reshape(raw.shape[0], self.num_points, 2) + reference
