"""SLPT-style refinement (Xia et al., CVPR 2022, "Sparse Local Patch Transformer").

* A light CNN (timm ``mobilenetv3_small_100``, from scratch) gives a coarse estimate by
  regression from the mean shape (pooled strides 8-32) and a stride-8 feature map (a small
  top-down fusion of the strides 8, 16, 32 maps).
* ``stages`` refinement stages (shared weights, as in SLPT): around each landmark's current
  estimate a ``patch x patch`` grid is sampled from the feature map with ``grid_sample`` (all
  68 landmarks of all images in one call), flattened and embedded linearly; a learned
  per-landmark embedding and an embedding of the current position are added, and a small
  ``TransformerEncoder`` runs across the 68 tokens, so landmarks attend to one another (the
  "inherent relation" SLPT learns). A linear layer predicts each point's offset in units of
  the patch extent. The extent halves from stage to stage (coarse-to-fine, as SLPT's patch
  pyramid).
* Loss: the point loss on the coarse estimate and on every stage (end to end).
"""

from __future__ import annotations

import numpy as np
import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

from facelm.models._registry import register_family_default, register_model
from facelm.models.base import LandmarkModel, PointLoss, point_weights
from facelm.models.heads import RegressionHead


class SLPT(LandmarkModel):
    """CNN coarse regression + patch-transformer refinement stages.

    Args:
        backbone: timm feature extractor (strides 8, 16, 32 are used).
        stages: refinement stages (weights shared between them).
        channels: width of the fused feature map the patches are sampled from.
        patch: samples per patch side; extent: the first stage's patch side (normalised units).
        dim, layers, heads: transformer width, depth and attention heads.
    """

    def __init__(self, backbone: str = "mobilenetv3_small_100", stages: int = 2, channels: int = 64,
                 patch: int = 7, extent: float = 0.25, dim: int = 128, layers: int = 2, heads: int = 4):
        super().__init__()
        self.backbone = timm.create_model(backbone, pretrained=False, features_only=True, out_indices=(2, 3, 4))
        chans = self.backbone.feature_info.channels()
        self.coarse = RegressionHead(sum(chans), hidden=256)
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in chans)
        self.patch, self.extent, self.stages = patch, extent, stages
        offsets = (torch.arange(patch, dtype=torch.float32) + 0.5) / patch - 0.5  # (-0.5, 0.5) cell centres
        self.register_buffer("patch_grid", torch.stack(torch.meshgrid(offsets, offsets, indexing="xy"), dim=-1))
        self.embed = nn.Linear(channels * patch * patch, dim)
        self.position = nn.Linear(2, dim)
        self.landmark_embedding = nn.Parameter(torch.randn(68, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, dim * 2, dropout=0.0, batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.offset = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 2))
        nn.init.zeros_(self.offset[-1].weight)
        nn.init.zeros_(self.offset[-1].bias)

    def _feature_map(self, feats: list[torch.Tensor]) -> torch.Tensor:
        fused = self.lateral[-1](feats[-1])
        for lateral, feat in zip(reversed(self.lateral[:-1]), reversed(feats[:-1])):
            fused = lateral(feat) + F.interpolate(fused, size=feat.shape[-2:], mode="bilinear", align_corners=False)
        return fused

    def sample_patches(self, fmap: torch.Tensor, landmarks: torch.Tensor, extent: float) -> torch.Tensor:
        """(B, C, h, w) map, (B, 68, 2) normalised points -> (B, 68, C * patch^2) patch features."""
        b, c = fmap.shape[:2]
        points = landmarks[:, :, None, None] + extent * self.patch_grid  # (B, 68, P, P, 2) normalised
        grid = (points * 2 - 1).reshape(b, 68 * self.patch, self.patch, 2)  # grid_sample's [-1, 1] frame
        sampled = F.grid_sample(fmap, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        sampled = sampled.reshape(b, c, 68, self.patch * self.patch)
        return sampled.permute(0, 2, 1, 3).reshape(b, 68, c * self.patch * self.patch)

    def forward(self, images: torch.Tensor) -> dict:
        feats = self.backbone(self.normalise(images))
        landmarks = self.coarse(torch.cat([f.mean(dim=(-2, -1)) for f in feats], dim=1))
        fmap = self._feature_map(feats)
        stages = [landmarks]
        for s in range(self.stages):
            extent = self.extent / 2**s
            tokens = (self.embed(self.sample_patches(fmap, landmarks, extent))
                      + self.position(landmarks - 0.5) + self.landmark_embedding)
            landmarks = landmarks + extent * self.offset(self.transformer(tokens))
            stages.append(landmarks)
        return {"landmarks": landmarks, "stages": torch.stack(stages, dim=1)}  # (B, 1 + stages, 68, 2)

    def fit_priors(self, landmarks: np.ndarray) -> None:
        self.coarse.set_reference(landmarks)

    def loss(self, out: dict, batch: dict, point_loss: PointLoss) -> tuple[torch.Tensor, dict]:
        target, weights = batch["landmarks"], point_weights(batch)
        per_stage = [point_loss(pred, target, weights=weights) for pred in out["stages"].unbind(dim=1)]
        parts = {"coarse": float(per_stage[0].detach())}
        parts.update({f"stage{i}": float(v.detach()) for i, v in enumerate(per_stage[1:], 1)})
        parts["points"] = parts[f"stage{len(per_stage) - 1}"] if len(per_stage) > 1 else parts["coarse"]
        return sum(per_stage), parts


@register_model
def slpt_1s(**kwargs) -> SLPT:
    return SLPT(**{"stages": 1, **kwargs})


@register_model
def slpt_2s(**kwargs) -> SLPT:
    return SLPT(**{"stages": 2, **kwargs})


register_family_default("slpt", "slpt_2s")
