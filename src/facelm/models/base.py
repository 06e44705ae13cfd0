"""The contract every facelm model follows.

* Input: float32 ``(B, 3, S, S)`` RGB pixel values in ``[0, 255]`` (after gamma); the
  model normalises internally, so exported graphs take plain pixels.
* Output of ``forward``: a dict with ``"landmarks"``: ``(B, 68, 2)`` in normalised
  coordinates ``u = x / S`` (pixel ``i`` covers ``[i, i+1)``). Heads may add more keys
  (``"heatmaps"``, ``"pose"``, ``"stages"``...) that only their own ``loss`` reads.
* ``loss(out, batch, point_loss)`` returns ``(total, parts)``; the default is the point
  loss on the final landmarks. ``batch["landmarks"]`` is normalised like the output.
  ``batch["point_weights"]`` (B, 68), when present, weighs every term that compares with the
  labels point by point (point, heatmap, offset losses); a point weighing 0 must leave the loss
  unchanged whatever its label, so targets derived from a whole shape (pose, shape-model
  projection, boundary maps) take the model's own detached prediction there
  (:func:`labels_where_weighted`). Absent weights mean 1 everywhere.
* ``fit_priors(landmarks)`` receives the normalised training landmarks ``(N, 68, 2)``
  before training, for models with data-driven priors (mean shape, PCA shape model);
  priors live in buffers, so they are saved with the weights.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from facelm.landmarks68 import CHALLENGE_SIZE, mean_shape

PointLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def mean_shape_normalised() -> torch.Tensor:
    """The generic mean shape (framed like a challenge crop) in normalised coordinates."""
    return torch.from_numpy(mean_shape(CHALLENGE_SIZE) / CHALLENGE_SIZE).float()


def point_weights(batch: dict) -> torch.Tensor | None:
    """The batch's per-point loss weights (B, 68), or None (every point weighs 1)."""
    return batch.get("point_weights")


def labels_where_weighted(batch: dict, pred: torch.Tensor) -> torch.Tensor:
    """The labels where a point has weight, the (detached) prediction where it weighs 0: the input of
    targets computed from the whole shape, so an unweighted point's label changes none of them."""
    weights = point_weights(batch)
    if weights is None:
        return batch["landmarks"]
    return torch.where(weights[..., None] > 0, batch["landmarks"], pred.detach())


class LandmarkModel(nn.Module):
    """Base class: pixel normalisation, default loss, optional priors."""

    def __init__(self) -> None:
        super().__init__()
        self.spec: dict = {}

    @staticmethod
    def normalise(images: torch.Tensor) -> torch.Tensor:
        """[0, 255] pixels -> roughly zero-mean unit-range inputs."""
        return images * (2.0 / 255.0) - 1.0

    def fit_priors(self, landmarks: np.ndarray) -> None:
        """Set data-driven priors from normalised training landmarks (N, 68, 2). Default: none."""

    def loss(self, out: dict, batch: dict, point_loss: PointLoss) -> tuple[torch.Tensor, dict]:
        total = point_loss(out["landmarks"], batch["landmarks"], weights=point_weights(batch))
        return total, {"points": float(total.detach())}


def _training_only(model: nn.Module) -> set[int]:
    """ids of the parameters and buffers of every submodule named in a module's ``training_only``
    (branches used by the training loss alone, such as PFLD's auxiliary pose net: never exported)."""
    skip = set()
    for module in model.modules():
        for name in getattr(module, "training_only", ()):
            branch = getattr(module, name)
            skip |= {id(t) for t in (*branch.parameters(), *branch.buffers())}
    return skip


def count_params(model: nn.Module) -> int:
    """Parameters of the network as it predicts (training-only branches left out, as in the export)."""
    skip = _training_only(model)
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)


def model_size_mb(model: nn.Module) -> float:
    """Size of the saved float32 weights: all state-dict tensors at 4 bytes each, in MiB (2^20 bytes),
    less the training-only branches (what an export keeps; what the challenge's budget counts).

    Buffers count too (they are saved); integer bookkeeping buffers such as BatchNorm's
    ``num_batches_tracked`` are counted at float32 size as well, a negligible overestimate.
    """
    skip = _training_only(model)
    n = sum(t.numel() for t in model.state_dict(keep_vars=True).values() if id(t) not in skip)
    return n * 4 / 2**20
