"""Point losses on normalised coordinates, chosen by name in config (``train.loss``).

Models output ``u = x / S``; every loss here first scales the error by 100, so its
parameters are in **percent of the crop side** (the unit of the challenge's NME x100).
Each loss returns the batch mean, or per-sample values with ``reduction="none"``
(the PFLD loss weights samples). ``weights`` (B, 68), a batch's per-point loss weights
(``batch["point_weights"]``, mmpose's ``keypoint_weights``), multiplies every point's error
before the mean over the 68 points: a point weighing 0 adds no error and no gradient.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from facelm.errors import FacelmError
from facelm.landmarks68 import CLOSED_GROUPS, GROUPS

PERCENT = 100.0
PointLoss = Callable[..., torch.Tensor]


def _reduce(per_point: torch.Tensor, reduction: str, weights: torch.Tensor | None = None) -> torch.Tensor:
    """(B, 68) -> batch mean scalar, or (B,) per sample; ``weights`` (B, 68) multiply the points first."""
    if weights is not None:
        per_point = per_point * weights
    per_sample = per_point.mean(dim=1)
    return per_sample if reduction == "none" else per_sample.mean()


def l1(pred, target, reduction="mean", weights=None):
    return _reduce((pred - target).abs().sum(-1) * PERCENT, reduction, weights)


def l2(pred, target, reduction="mean", weights=None):
    return _reduce(((pred - target) * PERCENT).pow(2).sum(-1), reduction, weights)


def smooth_l1(pred, target, reduction="mean", weights=None, beta: float = 1.0):
    err = F.smooth_l1_loss(pred * PERCENT, target * PERCENT, reduction="none", beta=beta)
    return _reduce(err.sum(-1), reduction, weights)


#: Wing loss (Feng et al. 2018) used w=10, eps=2 px on ~256 px faces; scaled to this crop
#: framing (face box ~half the crop) that is about w=2 %, eps=0.4 % of the crop side.
WING_W, WING_EPS = 2.0, 0.4


def wing(pred, target, reduction="mean", weights=None, w: float = WING_W, eps: float = WING_EPS):
    """log-like near zero (strong gradients for small errors), L1-like for large ones."""
    x = (pred - target).norm(dim=-1) * PERCENT
    c = w - w * math.log(1 + w / eps)
    per_point = torch.where(x < w, w * torch.log1p(x / eps), x - c)
    return _reduce(per_point, reduction, weights)


def _curve_tangents(target: torch.Tensor) -> torch.Tensor:
    """Unit tangent of every landmark's boundary curve, from its neighbours along its group."""
    prev_idx = np.arange(68)
    next_idx = np.arange(68)
    for name, idx in GROUPS.items():
        idx = list(idx)
        closed = name in CLOSED_GROUPS
        for k, i in enumerate(idx):
            if closed:
                prev_idx[i], next_idx[i] = idx[k - 1], idx[(k + 1) % len(idx)]
            else:
                prev_idx[i], next_idx[i] = idx[max(k - 1, 0)], idx[min(k + 1, len(idx) - 1)]
    tangent = target[:, next_idx] - target[:, prev_idx]
    return tangent / tangent.norm(dim=-1, keepdim=True).clamp_min(1e-8)


#: ADNet weights: the error across the boundary (normal) is what a reader sees as wrong;
#: along the boundary (tangent) the annotation itself is ambiguous, so it weighs less.
ADNET_NORMAL_WEIGHT, ADNET_TANGENT_WEIGHT = 1.0, 0.5


def adnet(pred, target, reduction="mean", weights=None, normal_weight=ADNET_NORMAL_WEIGHT,
          tangent_weight=ADNET_TANGENT_WEIGHT):
    """Anisotropic direction loss (Huang et al., ICCV 2021): the error split into the normal and
    tangent directions of each landmark's boundary curve (tangents from the ground truth), each
    component through the Wing function, weighted differently."""
    tangent = _curve_tangents(target.detach())
    normal = torch.stack([-tangent[..., 1], tangent[..., 0]], dim=-1)
    err = (pred - target) * PERCENT
    e_t = (err * tangent).sum(-1).abs()
    e_n = (err * normal).sum(-1).abs()
    c = WING_W - WING_W * math.log(1 + WING_W / WING_EPS)

    def wing_of(x):
        return torch.where(x < WING_W, WING_W * torch.log1p(x / WING_EPS), x - c)

    return _reduce(normal_weight * wing_of(e_n) + tangent_weight * wing_of(e_t), reduction, weights)


LOSSES: dict[str, PointLoss] = {"l1": l1, "l2": l2, "smooth_l1": smooth_l1, "wing": wing, "adnet": adnet}
LOSS_NAMES = tuple(LOSSES)


def create_loss(name: str) -> PointLoss:
    """A point loss by name: ``loss(pred, target, reduction="mean"|"none", weights=None)``."""
    if name not in LOSSES:
        raise FacelmError(f"unknown loss {name!r}; choose one of {', '.join(LOSS_NAMES)}")
    return LOSSES[name]


def adaptive_wing(pred_heat: torch.Tensor, target_heat: torch.Tensor, weights: torch.Tensor | None = None,
                  omega: float = 14.0, theta: float = 0.5, epsilon: float = 1.0, alpha: float = 2.1) -> torch.Tensor:
    """Adaptive Wing loss for heatmaps (B, K, H, W) in [0, 1] (Wang et al., ICCV 2019; the paper's
    defaults); ``weights`` (B, K) multiply each map's loss."""
    y = target_heat
    delta = (pred_heat - y).abs()
    power = alpha - y
    a = omega * (1 / (1 + (theta / epsilon) ** power)) * power * ((theta / epsilon) ** (power - 1)) / epsilon
    c = theta * a - omega * torch.log1p((theta / epsilon) ** power)
    loss = torch.where(delta < theta, omega * torch.log1p((delta / epsilon) ** power), a * delta - c)
    if weights is not None:
        loss = loss * weights[..., None, None]
    return loss.mean()
