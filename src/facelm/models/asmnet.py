"""ASMNet (Fard, Abdollahi, Mahoor, 2021): a light CNN with an Active Shape Model loss.

* Backbone: MobileNetV2 (timm ``mobilenetv2_*``, ``features_only``, from scratch).
* Shortcuts: the outputs of the blocks at strides 4, 8, 16 and 32 are globally pooled and
  concatenated ("fused"), so the regressor sees fine and coarse features together.
* Two heads on the fused vector: 136 landmark offsets from the training mean shape, and
  head pose (yaw, pitch, roll).
* ASM loss: ``point_loss(pred, gt) + asm_weight * point_loss(pred, asm(gt)) + pose_weight *
  |pose - pose_gt|``, where ``asm(gt)`` are the "ASM points": the ground truth projected onto
  the shape model's main modes (those explaining ~95% of the variance), clipped to
  +-3 sqrt(eigenvalue) and reconstructed. This pulls predictions towards plausible shapes.
  ``fit_priors`` builds the shape model (and the regression's mean shape) from the training
  landmarks. Pose ground truth: :func:`facelm.data.pose.pose_from_landmarks` on the batch's
  (augmented) landmarks. The paper raises the ASM weight during training; here it is constant.
"""

from __future__ import annotations

import numpy as np
import timm
import torch
import torch.nn as nn

from facelm.models._registry import register_family_default, register_model
from facelm.models.base import LandmarkModel, PointLoss, labels_where_weighted, point_weights
from facelm.models.heads import RegressionHead
from facelm.models.pose import pose_targets
from facelm.models.shape_model import ShapeModel

#: Modes that explain 95% of the Procrustes-aligned 300-W training shapes' variance
#: (``ShapeModel.modes_for_variance(landmarks, 0.95)`` on /work/shared/data/300w_train = 17).
MAIN_MODES = 17


class ASMNet(LandmarkModel):
    """MobileNetV2 with pooled multi-block shortcuts, a landmark and a pose head, and the ASM loss.

    Args:
        backbone: timm MobileNetV2 variant (``mobilenetv2_050``, ``mobilenetv2_100``...).
        n_modes: shape-model modes kept for the ASM points.
        asm_weight, pose_weight: weights of the ASM-point and pose terms.
    """

    def __init__(self, backbone: str = "mobilenetv2_100", n_modes: int = MAIN_MODES,
                 asm_weight: float = 1.0, pose_weight: float = 0.1):
        super().__init__()
        self.backbone = timm.create_model(backbone, pretrained=False, features_only=True, out_indices=(1, 2, 3, 4))
        fused = sum(self.backbone.feature_info.channels())
        self.head = RegressionHead(fused, hidden=256)
        self.pose_head = nn.Sequential(nn.Linear(fused, 64), nn.ReLU(inplace=True), nn.Linear(64, 3))
        self.shape_model = ShapeModel(n_modes)
        self.asm_weight, self.pose_weight = asm_weight, pose_weight

    def forward(self, images: torch.Tensor) -> dict:
        feats = self.backbone(self.normalise(images))
        fused = torch.cat([f.mean(dim=(-2, -1)) for f in feats], dim=1)
        out = {"landmarks": self.head(fused)}
        if self.training:
            out["pose"] = self.pose_head(fused)
        return out

    def fit_priors(self, landmarks: np.ndarray) -> None:
        self.head.set_reference(landmarks)
        self.shape_model.fit(landmarks)

    def loss(self, out: dict, batch: dict, point_loss: PointLoss) -> tuple[torch.Tensor, dict]:
        target, weights = batch["landmarks"], point_weights(batch)
        size = batch["image"].shape[-1]
        with torch.no_grad():
            shape = labels_where_weighted(batch, out["landmarks"])
            asm_points = self.shape_model.regularise(shape)
            pose_gt = pose_targets(shape, size)
        points = point_loss(out["landmarks"], target, weights=weights)
        asm = point_loss(out["landmarks"], asm_points, weights=weights)
        pose = (out["pose"] - pose_gt).abs().mean()
        total = points + self.asm_weight * asm + self.pose_weight * pose
        return total, {"points": float(points.detach()), "asm": float(asm.detach()), "pose": float(pose.detach())}


@register_model
def asmnet_050(**kwargs) -> ASMNet:
    return ASMNet("mobilenetv2_050", **kwargs)


@register_model
def asmnet_100(**kwargs) -> ASMNet:
    return ASMNet("mobilenetv2_100", **kwargs)


register_family_default("asmnet", "asmnet_100")
