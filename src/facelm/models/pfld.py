"""PFLD (Guo et al., 2019): a practical facial landmark detector.

* Backbone: MobileNetV2 inverted-residual blocks (stride 2 stem, 4 stages to stride 16).
* Multi-scale fully connected layer: S1 = the stage-4 feature pooled, S2 = a 3x3 stride-2
  conv of it pooled, S3 = a further conv to one cell; concatenated into the regressor
  (136 offsets from the training mean shape, so training starts at the mean shape).
* Auxiliary network from the stage-2 feature predicts yaw, pitch, roll (training only).
* PFLD loss: each sample's point loss is weighted by ``sum_c w_c * sum_k (1 - cos(dtheta_k))``
  with ``w_c`` the inverse batch frequency of the sample's attribute classes. The data has no
  attribute labels, so classes come from the ground truth: profile (|yaw| > 30 deg), head up
  or down (|pitch| > 20 deg), mouth open (expression), plus "normal". Deviation from the paper:
  the weight is ``1 + that product`` so it never vanishes while the pose branch is still
  untrained (the paper's product alone is ~0 for a well-predicted pose).
Pose ground truth: :func:`facelm.data.pose.pose_from_landmarks` on the (augmented) batch.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from facelm.models._registry import register_family_default, register_model
from facelm.models.base import LandmarkModel, PointLoss, labels_where_weighted, point_weights
from facelm.models.heads import RegressionHead
from facelm.models.pose import pose_targets


def conv_bn(cin: int, cout: int, k: int = 3, s: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.block = nn.Sequential(
            conv_bn(cin, hidden, 1), conv_bn(hidden, hidden, 3, stride, groups=hidden), conv_bn(hidden, cout, 1, act=False)
        )

    def forward(self, x):
        return x + self.block(x) if self.use_res else self.block(x)


def _stage(cin: int, cout: int, n: int, stride: int, expand: int) -> nn.Sequential:
    return nn.Sequential(*[InvertedResidual(cin if i == 0 else cout, cout, stride if i == 0 else 1, expand) for i in range(n)])


def _ch(c: int, width: float) -> int:
    return max(8, int(round(c * width / 8)) * 8)


class PFLD(LandmarkModel):
    """PFLD with a width multiplier (the paper's 0.25x and 1x). The auxiliary pose branch serves the
    training loss alone: it is not exported, nor counted in the parameters and MB."""

    training_only = ("aux",)

    def __init__(self, width: float = 1.0, pose_weight: float = 1.0):
        super().__init__()
        c64, c128, c16, c32 = _ch(64, width), _ch(128, width), _ch(16, width), _ch(32, width)
        self.stem = nn.Sequential(conv_bn(3, c64, 3, 2), conv_bn(c64, c64, 3, 1, groups=c64))
        self.stage1 = _stage(c64, c64, 5, 2, 2)  # stride 4 -> auxiliary branch input
        self.stage2 = nn.Sequential(_stage(c64, c128, 1, 2, 2), _stage(c128, c128, 6, 1, 4))  # stride 8
        self.stage3 = _stage(c128, c16, 1, 1, 2)  # S1 source
        self.conv_s2 = conv_bn(c16, c32, 3, 2)  # stride 16
        self.conv_s3 = nn.Sequential(nn.Conv2d(c32, _ch(128, width), 3, 2, 1), nn.ReLU(inplace=True))
        self.head = RegressionHead(c16 + c32 + _ch(128, width))
        self.aux = nn.Sequential(
            conv_bn(c64, 128, 3, 2), conv_bn(128, 128, 3, 1), conv_bn(128, 32, 3, 2), conv_bn(32, 128, 3, 1),
            nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(128, 32), nn.ReLU(inplace=True), nn.Linear(32, 3),
        )
        self.pose_weight = pose_weight

    def forward(self, images: torch.Tensor) -> dict:
        x = self.stem(self.normalise(images))
        early = self.stage1(x)
        s1 = self.stage3(self.stage2(early))
        s2 = self.conv_s2(s1)
        s3 = self.conv_s3(s2)
        pooled = torch.cat([s1.mean(dim=(-2, -1)), s2.mean(dim=(-2, -1)), s3.amax(dim=(-2, -1))], dim=1)
        out = {"landmarks": self.head(pooled)}
        if self.training:
            out["pose"] = self.aux(early)
        return out

    def fit_priors(self, landmarks: np.ndarray) -> None:
        self.head.set_reference(landmarks)

    def loss(self, out: dict, batch: dict, point_loss: PointLoss) -> tuple[torch.Tensor, dict]:
        per_sample = point_loss(out["landmarks"], batch["landmarks"], reduction="none", weights=point_weights(batch))
        size = batch["image"].shape[-1]
        with torch.no_grad():
            shape = labels_where_weighted(batch, out["landmarks"])
            pose_gt = pose_targets(shape, size)
            weights = 1 + attribute_weights(pose_gt, shape) * (1 - torch.cos(out["pose"].detach() - pose_gt)).sum(1)
        points = (weights * per_sample).mean()
        pose_loss = (1 - torch.cos(out["pose"] - pose_gt)).sum(1).mean()
        total = points + self.pose_weight * pose_loss
        return total, {"points": float(per_sample.mean().detach()), "pose": float(pose_loss.detach())}


def attribute_weights(pose: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
    """Sum over a sample's attribute classes of the inverse batch frequency of the class, (B,)."""
    mouth = (landmarks[:, 66] - landmarks[:, 62]).norm(dim=-1) / (landmarks[:, 54] - landmarks[:, 48]).norm(dim=-1).clamp_min(1e-6)
    attrs = torch.stack([
        pose[:, 0].abs() > np.radians(30),
        pose[:, 1] > np.radians(20),
        pose[:, 1] < -np.radians(20),
        mouth > 0.3,
    ], dim=1).float()
    attrs = torch.cat([attrs, (attrs.sum(1, keepdim=True) == 0).float()], dim=1)  # "normal"
    freq = attrs.mean(0).clamp_min(1.0 / len(attrs))
    return (attrs / freq).sum(1)


@register_model
def pfld_025(width: float = 0.25, **kwargs) -> PFLD:
    return PFLD(width=width, **kwargs)


@register_model
def pfld_100(width: float = 1.0, **kwargs) -> PFLD:
    return PFLD(width=width, **kwargs)


register_family_default("pfld", "pfld_100")
