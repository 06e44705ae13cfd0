"""Landmark heads shared by the backbone families: direct regression and heatmaps."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from facelm.models.codecs import HeatmapCodec, HeatmapOffsetCodec, RegressionCodec
from facelm.models.base import mean_shape_normalised


class RegressionHead(nn.Module):
    """Pooled features (one or several scales) -> 136 offsets from the mean shape."""

    def __init__(self, in_channels: int, num_points: int = 68, hidden: int = 0):
        super().__init__()
        layers: list[nn.Module] = []
        if hidden:
            layers += [nn.Linear(in_channels, hidden), nn.GELU()]
        layers.append(nn.Linear(hidden or in_channels, num_points * 2))
        self.mlp = nn.Sequential(*layers)
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)
        self.codec = RegressionCodec(num_points)
        self.register_buffer("reference", mean_shape_normalised())

    def set_reference(self, landmarks: np.ndarray) -> None:
        """Use the training mean shape as the zero point of the regression."""
        self.reference.copy_(torch.from_numpy(np.asarray(landmarks, np.float32).mean(axis=0)))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.codec.decode(self.mlp(pooled), self.reference)


class HeatmapHead(nn.Module):
    """A light FPN over multi-scale features -> 68 heatmaps at the finest stride -> soft-argmax.

    Deeper maps are projected to ``channels``, upsampled and summed into the finest map
    (top-down pathway), refined by a depthwise-separable block and projected to one
    logit map per landmark.
    """

    def __init__(self, in_channels: list[int], channels: int = 64, num_points: int = 68, sigma: float = 1.5,
                 offsets: bool = False):
        """``offsets``: also predict two offset maps per landmark (:class:`HeatmapOffsetCodec`);
        the output then has ``3 * num_points`` channels: logits, x offsets, y offsets."""
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.refine = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
            nn.BatchNorm2d(channels),
            nn.Conv2d(channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )
        self.out = nn.Conv2d(channels, num_points * (3 if offsets else 1), 1)
        self.sigma = sigma
        self.offsets = offsets
        self.num_points = num_points

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        fused = self.lateral[-1](features[-1])
        for lateral, feat in zip(reversed(self.lateral[:-1]), reversed(features[:-1])):
            fused = F.interpolate(fused, size=feat.shape[-2:], mode="bilinear", align_corners=False)
            fused = fused + lateral(feat)
        return self.out(self.refine(fused))

    def codec(self, logits: torch.Tensor) -> HeatmapCodec:
        kind = HeatmapOffsetCodec if self.offsets else HeatmapCodec
        return kind(logits.shape[-2], logits.shape[-1], self.sigma)
