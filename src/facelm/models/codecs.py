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


def _weighted_mean(per_point: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Mean of (B, K) per-landmark terms, each multiplied by its weight first (None: all 1)."""
    return (per_point if weights is None else per_point * weights).mean()


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
        prob = F.softmax(logits.float().flatten(2), dim=-1)
        return prob @ self._cell_grid(logits.device)

    def _cell_grid(self, device) -> torch.Tensor:
        """``(H*W, 2)`` normalised (x, y) centre of each cell in row-major order: the soft-argmax is one
        matrix product, which exports to a single ONNX MatMul instead of sums over each axis."""
        ys, xs = torch.meshgrid(cell_centres(self.height, device), cell_centres(self.width, device), indexing="ij")
        return torch.stack([xs.flatten(), ys.flatten()], dim=-1)

    def heatmap_loss(self, logits: torch.Tensor, landmarks: torch.Tensor,
                     weights: torch.Tensor | None = None) -> torch.Tensor:
        """Cross-entropy between the Gaussian target and the spatial softmax of ``logits``; ``weights``
        (B, K) multiply each landmark's term."""
        b, k, h, w = logits.shape
        target = self.encode(landmarks).reshape(b, k, h * w)
        log_prob = F.log_softmax(logits.float().reshape(b, k, h * w), dim=-1)
        return _weighted_mean(-(target * log_prob).sum(dim=-1), weights)


class HeatmapOffsetCodec(HeatmapCodec):
    """Heatmap + local offsets (the PIPNet idea): the most likely cell plus a regressed offset.

    The head predicts, per landmark, logits and an (x, y) offset map in cell units from each
    cell's centre. ``decode`` takes the arg-max cell (hard, so far-away false peaks cannot pull
    the estimate the way they pull a soft-argmax) and adds the offset predicted there; the
    result is differentiable in the offsets. Training: the heatmap cross-entropy of
    :class:`HeatmapCodec` plus an L1 loss on the offsets read at each landmark's true cell.
    """

    def true_cells(self, landmarks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Flat index of each landmark's cell and the target offsets (cell units), ``(B, K)`` each."""
        px = landmarks[..., 0] * self.width
        py = landmarks[..., 1] * self.height
        col = px.floor().clamp(0, self.width - 1)
        row = py.floor().clamp(0, self.height - 1)
        return (row * self.width + col).long(), px - (col + 0.5), py - (row + 0.5)

    def decode_offsets(self, logits: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """``(B, K, H, W)`` logits + ``(B, 2K, H, W)`` offsets -> ``(B, K, 2)`` normalised points."""
        b, k, h, w = logits.shape
        flat = logits.reshape(b, k, h * w).argmax(dim=-1, keepdim=True)  # (B, K, 1)
        off = offsets.float().reshape(b, 2, k, h * w)
        dx = torch.gather(off[:, 0], 2, flat).squeeze(-1)
        dy = torch.gather(off[:, 1], 2, flat).squeeze(-1)
        flat = flat.squeeze(-1)
        col = (flat % w).to(dx.dtype)
        row = torch.div(flat, w, rounding_mode="floor").to(dy.dtype)
        return torch.stack([(col + 0.5 + dx) / w, (row + 0.5 + dy) / h], dim=-1)

    def offset_loss(self, offsets: torch.Tensor, landmarks: torch.Tensor,
                    weights: torch.Tensor | None = None) -> torch.Tensor:
        """L1 (cell units) between the offsets at each landmark's true cell and the true offsets;
        ``weights`` (B, K) multiply each landmark's term."""
        b, k2, h, w = offsets.shape
        cell, tx, ty = self.true_cells(landmarks)
        off = offsets.float().reshape(b, 2, k2 // 2, h * w)
        dx = torch.gather(off[:, 0], 2, cell.unsqueeze(-1)).squeeze(-1)
        dy = torch.gather(off[:, 1], 2, cell.unsqueeze(-1)).squeeze(-1)
        return _weighted_mean((dx - tx).abs() + (dy - ty).abs(), weights) / 2


class RegressionCodec:
    """Direct regression: ``2K`` numbers are offsets from a reference (mean) shape."""

    def __init__(self, num_points: int = 68):
        self.num_points = num_points

    def decode(self, raw: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """``(B, 2K)`` head output + ``(K, 2)`` reference -> ``(B, K, 2)`` normalised points."""
        return raw.reshape(raw.shape[0], self.num_points, 2) + reference
