"""A reduced ConvNeXt trained by deep mutual learning (Zhang et al., CVPR 2018), a 2022 team's recipe.

* Two peer networks live in one module; each is a timm ConvNeXt (``convnext_atto`` with
  smaller ``dims``/``depths``, from scratch) with the shared FPN heatmap head
  (:class:`facelm.models.timm_models.TimmLandmarkModel`). The peers start from different
  random weights.
* Loss: each peer's own loss (point loss + heatmap cross-entropy) plus
  ``mutual_weight * point_loss(peer_k, peer_other.detach())``, pulling each peer toward the
  other's (detached) prediction.
* Inference returns the mean of the two peers' landmarks (a free two-model ensemble).
  Both peers are therefore saved, and ``model_size_mb`` counts both: the variants are sized
  so that the pair fits the 15 MB budget.
* Checkpoint averaging: the recipe averaged checkpoints; here the shared trainer's EMA of
  the weights (``train.ema_decay``, the EMA weights are what ``model.pt`` holds) is that
  averaging.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from facelm.models._registry import register_family_default, register_model
from facelm.models.base import LandmarkModel, PointLoss, point_weights
from facelm.models.timm_models import TimmLandmarkModel


class ConvNeXtDML(LandmarkModel):
    """Two ConvNeXt peers with heatmap heads; output = mean of the peers.

    Args:
        dims, depths: ConvNeXt stage widths and block counts (per peer).
        peers: number of peers (2 in the recipe).
        mutual_weight: weight of the mutual (peer-to-peer) point loss.
    """

    def __init__(self, dims: tuple = (32, 64, 128, 192), depths: tuple = (2, 2, 6, 2), peers: int = 2,
                 mutual_weight: float = 0.5):
        super().__init__()
        self.peers = nn.ModuleList(
            TimmLandmarkModel("convnext_atto", head="heatmap", dims=tuple(dims), depths=tuple(depths))
            for _ in range(peers))
        self.mutual_weight = mutual_weight

    def forward(self, images: torch.Tensor) -> dict:
        outs = [peer(images) for peer in self.peers]
        # the trainer expects a flat dict of tensors: peers stacked on dim 1
        peer_landmarks = torch.stack([o["landmarks"] for o in outs], dim=1)  # (B, peers, 68, 2)
        return {"landmarks": peer_landmarks.mean(dim=1), "peer_landmarks": peer_landmarks,
                "peer_heatmaps": torch.stack([o["heatmaps"] for o in outs], dim=1)}

    def fit_priors(self, landmarks: np.ndarray) -> None:
        for peer in self.peers:
            peer.fit_priors(landmarks)

    def loss(self, out: dict, batch: dict, point_loss: PointLoss) -> tuple[torch.Tensor, dict]:
        total = out["landmarks"].new_zeros(())
        parts: dict = {}
        peer_landmarks = out["peer_landmarks"].unbind(dim=1)
        for k, peer in enumerate(self.peers):
            own, _ = peer.loss({"landmarks": peer_landmarks[k], "heatmaps": out["peer_heatmaps"][:, k]}, batch, point_loss)
            others = [p.detach() for j, p in enumerate(peer_landmarks) if j != k]
            mutual = sum(point_loss(peer_landmarks[k], o) for o in others) / max(len(others), 1)
            total = total + own + self.mutual_weight * mutual
            parts[f"peer{k}"] = float(own.detach())
            parts[f"mutual{k}"] = float(mutual.detach()) if others else 0.0
        parts["points"] = float(point_loss(out["landmarks"], batch["landmarks"], weights=point_weights(batch)).detach())
        return total, parts


@register_model
def convnext_dml_t(**kwargs) -> ConvNeXtDML:
    return ConvNeXtDML(**{"dims": (24, 48, 96, 192), "depths": (2, 2, 6, 2), **kwargs})


@register_model
def convnext_dml_s(**kwargs) -> ConvNeXtDML:
    return ConvNeXtDML(**{"dims": (32, 64, 128, 192), "depths": (2, 2, 6, 2), **kwargs})


register_family_default("convnext_dml", "convnext_dml_s")
