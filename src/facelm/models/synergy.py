"""SynergyNet's idea (Wu et al., 3DV 2021) in 2D: regress a shape model, refine, and close the loop.

SynergyNet regresses 3DMM parameters, reconstructs landmarks, refines them with image
features, and regresses the 3DMM parameters back from the refined landmarks to tie both
together. Here the 3DMM is the 2D PCA :class:`facelm.models.shape_model.ShapeModel` (fitted by
``fit_priors``):

* Backbone (timm MobileNetV2, from scratch), pooled strides 8-32 -> ``n_modes`` shape
  coefficients (in units of each mode's standard deviation) + the similarity pose
  ``(a, b, tx, ty)`` as an offset from the data's mean pose; the shape model reconstructs the
  coarse landmarks ``L0`` (always a plausible face).
* Refinement: image features bilinearly sampled at each point of ``L0`` from a stride-8
  fused map, concatenated with the point's position and a PointNet-style global max-pool
  over the 68 points, go through a per-point MLP to offsets: ``L1 = L0 + offsets``.
* Self-constraint: re-projecting ``L1`` onto the shape model must give the predicted
  coefficients. It is measured in point-loss units as the distance between the shapes the
  two coefficient vectors describe under the predicted pose,
  ``point_loss(reconstruct(project(L1), pose), L0)``, which keeps it on the scale of the
  other terms whatever the eigenvalues are.

Loss: ``point_loss(L1, gt) + point_loss(L0, gt) + consistency_weight * self-constraint``.
"""

from __future__ import annotations

import numpy as np
import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

from facelm.models._registry import register_family_default, register_model
from facelm.models.base import LandmarkModel, PointLoss, point_weights
from facelm.models.shape_model import ShapeModel

#: Modes explaining 98% of the aligned 300-W training shapes (ShapeModel.modes_for_variance).
N_MODES = 30
#: Scale of the raw pose outputs: offsets from the mean pose start small.
POSE_SCALE = 0.1


class SynergyNet2D(LandmarkModel):
    """Shape-model regression + feature-sampled point refinement + a re-projection constraint.

    Args:
        backbone: timm feature extractor (strides 8, 16, 32 are used).
        n_modes: shape-model modes regressed.
        channels: width of the fused stride-8 map sampled at the points.
        hidden: width of the per-point refinement MLP.
        consistency_weight: weight of the self-constraint.
    """

    def __init__(self, backbone: str = "mobilenetv2_100", n_modes: int = N_MODES, channels: int = 64,
                 hidden: int = 128, consistency_weight: float = 0.5):
        super().__init__()
        self.backbone = timm.create_model(backbone, pretrained=False, features_only=True, out_indices=(2, 3, 4))
        chans = self.backbone.feature_info.channels()
        self.shape_model = ShapeModel(n_modes)
        self.regressor = nn.Sequential(nn.Linear(sum(chans), 256), nn.GELU(), nn.Linear(256, n_modes + 4))
        nn.init.zeros_(self.regressor[-1].weight)
        nn.init.zeros_(self.regressor[-1].bias)
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in chans)
        self.point_mlp = nn.Sequential(nn.Linear(channels + 2, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU())
        self.refine = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.GELU(), nn.Linear(hidden, 2))
        nn.init.zeros_(self.refine[-1].weight)
        nn.init.zeros_(self.refine[-1].bias)
        self.consistency_weight = consistency_weight

    def _feature_map(self, feats: list[torch.Tensor]) -> torch.Tensor:
        fused = self.lateral[-1](feats[-1])
        for lateral, feat in zip(reversed(self.lateral[:-1]), reversed(feats[:-1])):
            fused = lateral(feat) + F.interpolate(fused, size=feat.shape[-2:], mode="bilinear", align_corners=False)
        return fused

    def forward(self, images: torch.Tensor) -> dict:
        feats = self.backbone(self.normalise(images))
        raw = self.regressor(torch.cat([f.mean(dim=(-2, -1)) for f in feats], dim=1))
        coeffs = raw[:, 4:] * self.shape_model.eigenvalues.clamp_min(0).sqrt()
        pose = self.shape_model.mean_pose + POSE_SCALE * raw[:, :4]
        coarse = self.shape_model.reconstruct(coeffs, pose)
        fmap = self._feature_map(feats)
        sampled = F.grid_sample(fmap, (coarse * 2 - 1)[:, :, None], mode="bilinear", align_corners=False)
        point_feat = self.point_mlp(torch.cat([sampled[..., 0].transpose(1, 2), coarse - 0.5], dim=-1))  # (B, 68, H)
        global_feat = point_feat.amax(dim=1, keepdim=True).expand_as(point_feat)
        landmarks = coarse + self.refine(torch.cat([point_feat, global_feat], dim=-1))
        return {"landmarks": landmarks, "coarse": coarse, "coeffs": coeffs, "pose": pose}

    def fit_priors(self, landmarks: np.ndarray) -> None:
        self.shape_model.fit(landmarks)

    def loss(self, out: dict, batch: dict, point_loss: PointLoss) -> tuple[torch.Tensor, dict]:
        target, weights = batch["landmarks"], point_weights(batch)
        points = point_loss(out["landmarks"], target, weights=weights)
        coarse = point_loss(out["coarse"], target, weights=weights)
        reprojected = self.shape_model.reconstruct(self.shape_model.project(out["landmarks"]), out["pose"])
        consistency = point_loss(reprojected, out["coarse"])
        total = points + coarse + self.consistency_weight * consistency
        return total, {"points": float(points.detach()), "coarse": float(coarse.detach()),
                       "consistency": float(consistency.detach())}


@register_model
def synergy_050(**kwargs) -> SynergyNet2D:
    return SynergyNet2D("mobilenetv2_050", **kwargs)


@register_model
def synergy_100(**kwargs) -> SynergyNet2D:
    return SynergyNet2D("mobilenetv2_100", **kwargs)


register_family_default("synergy", "synergy_100")
