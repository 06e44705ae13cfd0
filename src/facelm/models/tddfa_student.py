"""3DDFA_V2's architecture as a trainable student: MobileNetV1 x0.5, 62 3DMM parameters, BFM decode.

The teacher (:mod:`facelm.models.tddfa`) resamples a 120-pixel ROI out of the full crop. The
student reads the crop at the model's input size ``S`` and *slices* the same ROI (the sqrt-2
square around the challenge framing's landmark box) out of it, ``round(0.721 * S)`` pixels a side:
one ONNX Slice instead of a GridSample, and the network runs at that ROI size, so ``S = 128``
costs (92 / 120)^2 = 0.59 of the teacher network's convolutions. The 62 parameters are decoded
through the 68-point BFM exactly as the teacher's are (:func:`facelm.models.tddfa.decode_params`):
every prediction is a 3D face seen from some pose, hidden jaw points included.

``teacher=FOLDER`` starts from the teacher's own weights (MIT) and fills the BFM buffers; a saved
model carries them and reloads without the folder. Fine-tuned on new faces it is a new model
(self-training), and its card says what it started from.

    create_model("tddfa_student", teacher="../shared/models/3ddfa_v2")
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn as nn

from facelm.errors import FacelmError
from facelm.landmarks68 import CROP_BOX_FRACTION, CROP_CENTRE
from facelm.models._registry import register_model
from facelm.models.base import LandmarkModel
from facelm.models.bfm import N_EXPR, N_SHAPE
from facelm.models.mobilenetv1 import MobileNetV1
from facelm.models.tddfa import TDDFALandmarks, decode_params

N_PARAMS = 12 + N_SHAPE + N_EXPR


def roi_slice(side: int) -> tuple[int, int, int]:
    """(x0, y0, roi side) in whole pixels of the fixed ROI inside a crop of ``side`` pixels."""
    roi = round(side * CROP_BOX_FRACTION * math.sqrt(2))
    return round(side * CROP_CENTRE[0] - roi / 2), round(side * CROP_CENTRE[1] - roi / 2), roi


class TDDFAStudent(LandmarkModel):
    """Crop pixels (B, 3, S, S) -> fixed ROI slice -> MobileNetV1 x0.5 -> 62 parameters -> 68 points."""

    INIT_ONLY = ("teacher",)

    def __init__(self, teacher: str | os.PathLike | None = None):
        super().__init__()
        self.net = MobileNetV1(width=0.5)
        self.net.fc_param = nn.Linear(self.net.num_features, N_PARAMS)
        self.register_buffer("param_mean", torch.zeros(N_PARAMS))
        self.register_buffer("param_std", torch.ones(N_PARAMS))
        self.register_buffer("mean_shape", torch.zeros(68, 3))
        self.register_buffer("basis", torch.zeros(68, 3, N_SHAPE + N_EXPR))
        if teacher is not None:
            self._start_from(Path(teacher))

    def _start_from(self, folder: Path) -> None:
        """The teacher's network weights, parameter statistics and BFM bases."""
        source = TDDFALandmarks(folder)
        self.net.load_state_dict(source.net.state_dict())
        for name in ("param_mean", "param_std", "mean_shape", "basis"):
            getattr(self, name).copy_(getattr(source, name))

    def forward(self, images: torch.Tensor) -> dict:
        side = images.shape[-1]
        x0, y0, roi_px = roi_slice(int(side))
        if y0 + roi_px > side or x0 < 0:
            raise FacelmError(f"tddfa_student: input of {side} px too small for its ROI")
        patch = images[:, :, y0 : y0 + roi_px, x0 : x0 + roi_px].flip(1)  # RGB -> BGR, as the teacher's network
        params = self.net.fc_param(self.net((patch - 127.5) / 128.0)) * self.param_std + self.param_mean
        roi = torch.tensor([(x0 + roi_px / 2) / side, (y0 + roi_px / 2) / side, roi_px / side],
                           device=images.device).expand(images.shape[0], 3)
        points, rotation = decode_params(params, self.mean_shape, self.basis, roi, False)  # its offset is learnt
        return {"landmarks": points[..., :2], "points3d": points, "rotation": rotation}


@register_model
def tddfa_student(**kwargs):
    return TDDFAStudent(**kwargs)
