"""A 3DMM head on the real face model: regress pose, identity and expression, decode through the BFM.

As in 3DDFA_V2 and SynergyNet, the network outputs an affine camera (2x4: scaled rotation and
shift, in normalised crop coordinates) and 50 coefficients (40 identity, 10 expression, in units of
their 300W-LP standard deviation); the 68 points are ``camera @ (mean + basis @ coeffs)``, so every
prediction is a plausible 3D face seen from some pose, hidden jaw points included. The loss is the
point loss on the decoded points plus a small prior keeping the coefficients near the mean face.

The bases (68-point BFM, :mod:`facelm.models.bfm`) are buffers: ``bfm=FOLDER`` fills them when the
model is first built; a saved model carries them and reloads without the folder.

    create_model("bfm3d_mbv1_050", bfm="../shared/models/3ddfa_v2")   # MobileNetV1 x0.5, like 3DDFA_V2
"""

from __future__ import annotations

import os

import numpy as np
import timm
import torch
import torch.nn as nn

from facelm.errors import FacelmError
from facelm.models._registry import register_model
from facelm.models.base import LandmarkModel, PointLoss, point_weights
from facelm.models.bfm import BFM68, N_EXPR, N_SHAPE
from facelm.models.mobilenetv1 import MobileNetV1

N_COEFFS = N_SHAPE + N_EXPR


class BFMLandmarkModel(LandmarkModel):
    """Backbone features -> camera (8) + coefficients (50) -> 68 points through the BFM bases."""

    INIT_ONLY = ("bfm",)

    def __init__(self, backbone: str = "mobilenetv1_050", bfm: str | os.PathLike | None = None,
                 prior_weight: float = 1e-3):
        super().__init__()
        self.backbone, features = _backbone(backbone)
        self.fc = nn.Linear(features, 8 + N_COEFFS)
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)
        self.prior_weight = prior_weight
        self.register_buffer("mean_shape", torch.zeros(68, 3))  # centred, unit-scaled BFM frame
        self.register_buffer("basis", torch.zeros(68, 3, N_COEFFS))
        self.register_buffer("camera0", torch.zeros(2, 4))  # the mean face's camera
        if bfm is not None:
            self._set_bases(BFM68(bfm))

    def _set_bases(self, bfm: BFM68) -> None:
        mean = bfm.shape(bfm.param_mean[None, 12:])[0]  # the 300W-LP mean face (68, 3)
        centre, scale = mean.mean(axis=0), np.linalg.norm(mean - mean.mean(axis=0)) / np.sqrt(68)
        basis = bfm.basis.reshape(68, 3, N_COEFFS) * bfm.param_std[12:] / scale  # per standard deviation
        self.mean_shape.copy_(torch.from_numpy((mean - centre) / scale).float())
        self.basis.copy_(torch.from_numpy(basis).float())
        # a frontal camera placing the mean face like the challenge framing (refined by fit_priors)
        self.camera0.copy_(torch.tensor([[0.12, 0, 0, 0.5], [0, -0.12, 0, 0.58]]))

    def fit_priors(self, landmarks: np.ndarray) -> None:
        """The camera that best maps the mean face onto the training mean shape (affine least squares)."""
        if not bool(self.basis.abs().sum()):
            raise FacelmError("bfm3d model has no face model bases: create it with bfm=FOLDER")
        target = np.asarray(landmarks, np.float64).mean(axis=0)  # (68, 2) normalised
        design = np.concatenate([self.mean_shape.double().numpy(), np.ones((68, 1))], axis=1)
        camera, *_ = np.linalg.lstsq(design, target, rcond=None)
        self.camera0.copy_(torch.from_numpy(camera.T).float())

    def decode(self, params: torch.Tensor) -> torch.Tensor:
        camera = self.camera0 + params[:, :8].reshape(-1, 2, 4)
        shape = self.mean_shape + torch.einsum("kjc,bc->bkj", self.basis, params[:, 8:])
        return torch.einsum("bij,bkj->bki", camera[:, :, :3], shape) + camera[:, None, :, 3]

    def forward(self, images: torch.Tensor) -> dict:
        params = self.fc(self.backbone(self.normalise(images)))
        return {"landmarks": self.decode(params), "coeffs": params[:, 8:]}

    def loss(self, out: dict, batch: dict, point_loss: PointLoss) -> tuple[torch.Tensor, dict]:
        points = point_loss(out["landmarks"], batch["landmarks"], weights=point_weights(batch))
        prior = (out["coeffs"] ** 2).mean()
        return points + self.prior_weight * prior, {"points": float(points.detach()), "prior": float(prior.detach())}


def _backbone(name: str) -> tuple[nn.Module, int]:
    """(module mapping images to pooled features, feature count)."""
    if name == "mobilenetv1_050":
        net = MobileNetV1(width=0.5)
        return net, net.num_features
    net = timm.create_model(name, pretrained=False, num_classes=0)  # pooled features, classifier dropped
    with torch.no_grad():
        features = net.eval()(torch.zeros(1, 3, 64, 64)).shape[1]
    return net.train(), features


@register_model
def bfm3d_mbv1_050(**kwargs):
    return BFMLandmarkModel("mobilenetv1_050", **kwargs)


@register_model
def bfm3d_mnv3s_100(**kwargs):
    return BFMLandmarkModel("mobilenetv3_small_100", **kwargs)
