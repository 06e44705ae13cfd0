"""A small stacked hourglass (FAN, Bulat & Tzimiropoulos 2017) with optional ADNet parts.

* Stem to stride 4, then ``stacks`` hourglasses (recursive down/up with skip branches) of
  bottleneck residual blocks. Each stack predicts 68 point heatmaps at stride 4; the next
  stack gets ``features + conv(features) + conv(heatmaps)`` (intermediate supervision: every
  stack's heatmaps are in the loss). Coordinates: soft-argmax of the last stack's heatmaps
  (:class:`facelm.models.codecs.HeatmapCodec`), with the point loss on them.
* Heatmap loss: ``"ce"`` (cross-entropy against the codec's Gaussian, consistent with the
  soft-argmax decoding) or ``"awing"`` (adaptive wing, Wang et al. 2019, on ``sigmoid(logits)``
  against the peak-1 Gaussian; ADNet's choice).
* ADNet (Huang et al. 2021), ``adnet=True``: each stack also predicts one edge (boundary)
  heatmap per :data:`facelm.landmarks68.GROUPS` polyline, supervised with adaptive wing
  against a Gaussian of the distance to the ground-truth polyline; an anisotropic attention
  mask ``sigmoid(conv([points, edges]))`` computed from the point and edge heatmaps
  re-weights the features passed to the next stack (``features * (1 + mask)``), so the next
  stack attends along the face's boundaries. ADNet's anisotropic direction loss is the
  trainer's ``adnet`` point loss (``train.loss: adnet``), applied to the coordinates.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from facelm.models.codecs import HeatmapCodec, cell_centres
from facelm.landmarks68 import CLOSED_GROUPS, GROUPS
from facelm.models.losses import adaptive_wing
from facelm.models._registry import register_family_default, register_model
from facelm.models.base import LandmarkModel, PointLoss, labels_where_weighted, point_weights

HEATMAP_LOSSES = ("ce", "awing")


def _segments() -> tuple[np.ndarray, np.ndarray]:
    """Polyline segments of the 68-point scheme: (S, 2) point index pairs and (S,) group ids."""
    pairs, groups = [], []
    for g, (name, idx) in enumerate(GROUPS.items()):
        ring = idx + [idx[0]] if name in CLOSED_GROUPS else idx
        for a, b in zip(ring[:-1], ring[1:]):
            pairs.append((a, b))
            groups.append(g)
    return np.array(pairs), np.array(groups)


SEGMENTS, SEGMENT_GROUPS = _segments()


def edge_heatmaps(landmarks: torch.Tensor, height: int, width: int, sigma: float) -> torch.Tensor:
    """(B, 68, 2) normalised points -> (B, G, H, W) boundary maps ``exp(-d^2 / 2 sigma^2)``, d in cells."""
    ys, xs = cell_centres(height, landmarks.device), cell_centres(width, landmarks.device)
    grid = torch.stack(torch.meshgrid(xs * width, ys * height, indexing="xy"), dim=-1)  # (H, W, 2) cells
    scale = landmarks.new_tensor([width, height])
    p0 = landmarks[:, SEGMENTS[:, 0]] * scale  # (B, S, 2)
    p1 = landmarks[:, SEGMENTS[:, 1]] * scale
    seg = (p1 - p0)[:, :, None, None]  # (B, S, 1, 1, 2)
    rel = grid[None, None] - p0[:, :, None, None]  # (B, S, H, W, 2)
    t = ((rel * seg).sum(-1) / (seg**2).sum(-1).clamp_min(1e-9)).clamp(0, 1)
    dist2 = ((rel - t[..., None] * seg) ** 2).sum(-1)  # (B, S, H, W)
    groups = torch.as_tensor(SEGMENT_GROUPS, device=landmarks.device)
    per_group = torch.full((landmarks.shape[0], len(GROUPS), height, width), float("inf"), device=landmarks.device)
    per_group = per_group.scatter_reduce(1, groups.view(1, -1, 1, 1).expand_as(dist2), dist2, reduce="amin")
    return torch.exp(-per_group / (2 * sigma**2))


class Bottleneck(nn.Module):
    """Pre-activation bottleneck residual block (channels -> channels/2 -> channels)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        mid = cout // 2
        self.body = nn.Sequential(
            nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.Conv2d(cin, mid, 1, bias=False),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True), nn.Conv2d(mid, mid, 3, padding=1, bias=False),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True), nn.Conv2d(mid, cout, 1, bias=False),
        )
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x):
        return self.skip(x) + self.body(x)


class Hourglass(nn.Module):
    """Recursive hourglass of ``depth`` halvings; upsampling matches the skip's size (any input)."""

    def __init__(self, depth: int, channels: int):
        super().__init__()
        self.skip = Bottleneck(channels, channels)
        self.down = Bottleneck(channels, channels)
        self.inner = Hourglass(depth - 1, channels) if depth > 1 else Bottleneck(channels, channels)
        self.up = Bottleneck(channels, channels)

    def forward(self, x):
        low = self.down(F.max_pool2d(x, 2, ceil_mode=True))
        low = self.up(self.inner(low))
        return self.skip(x) + F.interpolate(low, size=x.shape[-2:], mode="nearest")


class StackedHourglass(LandmarkModel):
    """``stacks`` hourglasses of width ``channels`` at stride 4, heatmaps decoded by soft-argmax.

    Args:
        stacks, channels, depth: number of hourglasses, their width, halvings per hourglass.
        adnet: add ADNet's edge heatmaps and anisotropic attention between stacks.
        heatmap_loss: ``"ce"`` or ``"awing"`` for the point heatmaps.
        heatmap_weight: weight of the summed heatmap losses next to the point loss.
        sigma: Gaussian width of heatmap targets, in heatmap cells.
    """

    def __init__(self, stacks: int = 2, channels: int = 128, depth: int = 3, adnet: bool = False,
                 heatmap_loss: str = "ce", heatmap_weight: float = 0.1, sigma: float = 1.5):
        super().__init__()
        if heatmap_loss not in HEATMAP_LOSSES:
            raise ValueError(f"heatmap_loss must be one of {HEATMAP_LOSSES}, not {heatmap_loss!r}")
        self.adnet, self.heatmap_loss_name = adnet, heatmap_loss
        self.heatmap_weight, self.sigma = heatmap_weight, sigma
        n_edges = len(GROUPS) if adnet else 0
        self.stem = nn.Sequential(
            nn.Conv2d(3, channels // 2, 7, 2, 3, bias=False), nn.BatchNorm2d(channels // 2), nn.ReLU(inplace=True),
            Bottleneck(channels // 2, channels), nn.MaxPool2d(2, ceil_mode=True), Bottleneck(channels, channels),
        )
        self.hourglasses = nn.ModuleList(Hourglass(depth, channels) for _ in range(stacks))
        self.post = nn.ModuleList(
            nn.Sequential(Bottleneck(channels, channels), nn.Conv2d(channels, channels, 1, bias=False),
                          nn.BatchNorm2d(channels), nn.ReLU(inplace=True)) for _ in range(stacks))
        self.point_out = nn.ModuleList(nn.Conv2d(channels, 68, 1) for _ in range(stacks))
        self.edge_out = nn.ModuleList(nn.Conv2d(channels, n_edges, 1) for _ in range(stacks if adnet else 0))
        # feedback into the next stack: features and predicted maps back to `channels`
        self.merge_feat = nn.ModuleList(nn.Conv2d(channels, channels, 1) for _ in range(stacks - 1))
        self.merge_maps = nn.ModuleList(nn.Conv2d(68 + n_edges, channels, 1) for _ in range(stacks - 1))
        self.attention = nn.ModuleList(nn.Conv2d(68 + n_edges, 1, 3, padding=1) for _ in range(stacks - 1 if adnet else 0))

    def forward(self, images: torch.Tensor) -> dict:
        x = self.stem(self.normalise(images))
        points, edges = [], []
        for i, hourglass in enumerate(self.hourglasses):
            feat = self.post[i](hourglass(x))
            maps = [self.point_out[i](feat)]
            points.append(maps[0])
            if self.adnet:
                maps.append(self.edge_out[i](feat))
                edges.append(maps[1])
            if i + 1 < len(self.hourglasses):
                maps_cat = torch.cat(maps, dim=1)
                if self.adnet:
                    # anisotropic attention: emphasise features near predicted points and boundaries
                    feat = feat * (1 + torch.sigmoid(self.attention[i](torch.sigmoid(maps_cat))))
                x = x + self.merge_feat[i](feat) + self.merge_maps[i](maps_cat)
        logits = points[-1]
        landmarks = HeatmapCodec(logits.shape[-2], logits.shape[-1], self.sigma).decode(logits)
        out = {"landmarks": landmarks, "heatmaps": torch.stack(points, dim=1)}  # (B, stacks, 68, h, w)
        if self.adnet:
            out["edges"] = torch.stack(edges, dim=1)  # (B, stacks, groups, h, w)
        return out

    def _point_heatmap_loss(self, logits: torch.Tensor, target: torch.Tensor, weights) -> torch.Tensor:
        codec = HeatmapCodec(logits.shape[-2], logits.shape[-1], self.sigma)
        if self.heatmap_loss_name == "ce":
            return codec.heatmap_loss(logits, target, weights)
        heat = codec.encode(target)
        heat = heat / heat.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
        return adaptive_wing(torch.sigmoid(logits), heat, weights)

    def loss(self, out: dict, batch: dict, point_loss: PointLoss) -> tuple[torch.Tensor, dict]:
        target, weights = batch["landmarks"], point_weights(batch)
        points = point_loss(out["landmarks"], target, weights=weights)
        heat = sum(self._point_heatmap_loss(logits, target, weights) for logits in out["heatmaps"].unbind(dim=1))
        total = points + self.heatmap_weight * heat
        parts = {"points": float(points.detach()), "heatmap": float(heat.detach())}
        if self.adnet:
            h, w = out["edges"].shape[-2:]
            edge_target = edge_heatmaps(labels_where_weighted(batch, out["landmarks"]), h, w, self.sigma)
            edge = sum(adaptive_wing(torch.sigmoid(e), edge_target) for e in out["edges"].unbind(dim=1))
            total = total + self.heatmap_weight * edge
            parts["edge"] = float(edge.detach())
        return total, parts


@register_model
def hourglass_s(**kwargs) -> StackedHourglass:
    return StackedHourglass(**{"stacks": 2, "channels": 128, **kwargs})


@register_model
def hourglass_adnet(**kwargs) -> StackedHourglass:
    return StackedHourglass(**{"stacks": 2, "channels": 128, "adnet": True, "heatmap_loss": "awing", **kwargs})


register_family_default("hourglass", "hourglass_s")
