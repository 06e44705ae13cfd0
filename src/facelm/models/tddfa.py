"""3DDFA_V2 (Guo et al., ECCV 2020) MobileNetV1 x0.5 as a landmark model on challenge crops.

``TDDFALandmarks`` follows the facelm model contract (float ``(B, 3, S, S)`` RGB pixels in,
normalised ``(B, 68, 2)`` out), so a teacher built from it is evaluated, exported to ONNX and used
for distillation like any facelm model. Inside ``forward``:

1. the face region (ROI) is cut from the crop and resized to 120x120 (bilinear, black outside the
   image), as 3DDFA_V2's ``crop_img`` + ``cv2.resize`` do. The first pass uses one fixed ROI for
   every challenge crop: the sqrt-2 square around the 68-point box of the challenge framing
   (box 51 % of the side, centred at (0.5, 0.58)); an optional second pass takes the ROI from the
   first pass's points (3DDFA_V2's video mode);
2. pixels go to BGR, ``(p - 127.5) / 128``; the network predicts 62 normalised parameters;
3. the parameters are de-normalised with the 300W-LP statistics and decoded through the 68-point
   BFM bases (:mod:`facelm.models.bfm`), and the points mapped back from the ROI to the crop;
4. with ``jitter=K`` the last pass runs on the first K ROIs of :data:`JITTER` (the ROI itself, then
   small shifts and scalings of it) and averages their points: the network's error moves with
   its framing, so an average over framings cancels part of it. Mirrored ROIs are left out on
   purpose: on turned faces the mirrored pass disagrees (a flip-TTA teacher raised the 60-90 bin).

Weights are read from the original checkpoint (``mb05_120x120.pth``) with ``weights_only=True``.
``forward`` also returns ``"points3d"`` (normalised x, y and depth) and ``"rotation"`` (the head pose).
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from facelm.errors import FacelmError
from facelm.landmarks68 import CROP_BOX_FRACTION, CROP_CENTRE
from facelm.models.bfm import BFM68
from facelm.models.mobilenetv1 import MobileNetV1

WEIGHTS_FILE = "mb05_120x120.pth"
ROI_SIZE = 120
#: ROI perturbations (shift x, shift y as fractions of the ROI side; scale factor), the identity first
JITTER = (
    (0.0, 0.0, 1.0), (0.03, 0.0, 1.0), (-0.03, 0.0, 1.0), (0.0, 0.03, 1.0), (0.0, -0.03, 1.0),
    (0.0, 0.0, 1.06), (0.0, 0.0, 0.94), (0.03, 0.03, 1.0), (-0.03, -0.03, 1.0), (0.03, -0.03, 1.0),
    (-0.03, 0.03, 1.0), (0.0, 0.0, 1.12), (0.0, 0.0, 0.88),
)


def fixed_roi() -> tuple[float, float, float]:
    """(centre x, centre y, side) of the first-pass ROI, normalised by the crop side."""
    return CROP_CENTRE[0], CROP_CENTRE[1], CROP_BOX_FRACTION * math.sqrt(2)


def roi_from_points(points: torch.Tensor) -> torch.Tensor:
    """(B, 68, 2) normalised points -> (B, 3) ROI (centre x, centre y, side): sqrt-2 square of their box."""
    low, high = points.amin(dim=1), points.amax(dim=1)
    centre = (low + high) / 2
    side = (high - low).amax(dim=1, keepdim=True) * math.sqrt(2)
    return torch.cat([centre, side], dim=1)


def sample_roi(images: torch.Tensor, roi: torch.Tensor, size: int = ROI_SIZE) -> torch.Tensor:
    """Bilinear resample of each image's square ROI (normalised centre x, y, side) to ``size`` pixels."""
    steps = (torch.arange(size, dtype=images.dtype, device=images.device) + 0.5) / size - 0.5  # cell centres
    xs = roi[:, 0:1] + roi[:, 2:3] * steps  # (B, size) normalised crop coordinates
    ys = roi[:, 1:2] + roi[:, 2:3] * steps
    grid = torch.stack([xs[:, None, :].expand(-1, size, -1), ys[:, :, None].expand(-1, -1, size)], dim=-1)
    return F.grid_sample(images, grid * 2 - 1, mode="bilinear", padding_mode="zeros", align_corners=False)


def decode_params(params: torch.Tensor, mean_shape: torch.Tensor, basis: torch.Tensor, roi: torch.Tensor,
                  pixel_centres: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """62 de-normalised parameters (B, 62) predicted on ROIs (B, 3) -> normalised crop points (B, 68, 3)
    and the scaled rotation (B, 3, 3) (BFM frame). ``pixel_centres``: map 3DDFA_V2's ROI pixel indices
    to continuous coordinates (False keeps its published mapping, half a ROI pixel up and left)."""
    camera = params[:, :12].reshape(-1, 3, 4)
    shape = mean_shape + torch.einsum("kjc,bc->bkj", basis, params[:, 12:])
    pts = torch.einsum("bij,bkj->bki", camera[:, :, :3], shape) + camera[:, None, :, 3]
    x = pts[..., 0] - 1
    y = ROI_SIZE - pts[..., 1]
    z = pts[..., 2] - 1
    scale = roi[:, 2:3] / ROI_SIZE
    origin_x = roi[:, 0:1] - roi[:, 2:3] / 2
    origin_y = roi[:, 1:2] - roi[:, 2:3] / 2
    # as 3DDFA_V2 maps back: ROI origin + point * ROI side / 120 (what its published scores use)
    points = torch.stack([x * scale + origin_x, y * scale + origin_y, z * scale], dim=-1)
    if pixel_centres:
        # 3DDFA_V2 gives ROI pixel indices (pixel i's centre at i), and ROI pixel i covers [i, i+1)
        # of the ROI (sample_roi): half a ROI pixel, normalised by the crop side
        half = 0.5 * roi[:, 2:3] / ROI_SIZE
        points = points + torch.stack([half, half, torch.zeros_like(half)], dim=-1)
    return points, camera[:, :, :3]


class TDDFALandmarks(nn.Module):
    """The network, its parameter statistics and the BFM bases (all buffers), on challenge crops."""

    def __init__(self, folder: str | os.PathLike, passes: int = 1, pixel_centres: bool = False, jitter: int = 1):
        super().__init__()
        if passes not in (1, 2):
            raise FacelmError(f"3DDFA_V2 teacher: passes must be 1 or 2, not {passes}")
        if not 1 <= jitter <= len(JITTER):
            raise FacelmError(f"3DDFA_V2 teacher: jitter must be 1..{len(JITTER)}, not {jitter}")
        folder = Path(folder)
        bfm = BFM68(folder)
        self.passes = passes
        self.jitter = jitter
        self.spec = {"name": "3ddfa_v2", "kwargs": {"passes": passes, "pixel_centres": pixel_centres, "jitter": jitter}}
        # 3DDFA_V2 maps points back in ROI pixel indices (pixel i's centre at i); facelm's frame (and
        # the challenge labels) put it at i + 0.5 (decode_params). False reproduces its published mapping.
        self.pixel_centres = pixel_centres
        self.net = MobileNetV1(width=0.5)
        self.net.fc_param = nn.Linear(self.net.num_features, 62)
        self._load_weights(folder / WEIGHTS_FILE)
        self.register_buffer("param_mean", torch.from_numpy(bfm.param_mean).float())
        self.register_buffer("param_std", torch.from_numpy(bfm.param_std).float())
        self.register_buffer("mean_shape", torch.from_numpy(bfm.mean_shape.reshape(68, 3)).float())
        self.register_buffer("basis", torch.from_numpy(bfm.basis.reshape(68, 3, 50)).float())
        self.register_buffer("roi0", torch.tensor(fixed_roi(), dtype=torch.float32))
        self.register_buffer("jitter_rois", torch.tensor(JITTER[:jitter], dtype=torch.float32))
        self.eval()

    def _load_weights(self, path: Path) -> None:
        if not path.is_file():
            raise FacelmError("3DDFA_V2 weights not found (see ../shared/models/3ddfa_v2/README.md)", path)
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
            state = {k.removeprefix("module."): v for k, v in checkpoint["state_dict"].items()}
            # fc_lm is a training-time head that inference does not use
            self.net.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc_lm.")})
        except (RuntimeError, KeyError, TypeError, ValueError, OSError) as err:
            raise FacelmError(f"not a 3DDFA_V2 MobileNetV1 x0.5 checkpoint ({type(err).__name__})", path) from None

    def _params(self, images: torch.Tensor, roi: torch.Tensor) -> torch.Tensor:
        patch = sample_roi(images, roi).flip(1)  # RGB -> BGR
        out = self.net.fc_param(self.net((patch - 127.5) / 128.0))
        return out * self.param_std + self.param_mean

    def _decode(self, params: torch.Tensor, roi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return decode_params(params, self.mean_shape, self.basis, roi, self.pixel_centres)

    def _jittered(self, images: torch.Tensor, roi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Points and rotation averaged over the :data:`JITTER` ROIs around ``roi`` (the identity alone at jitter=1)."""
        if self.jitter == 1:
            return self._decode(self._params(images, roi), roi)
        batch = images.shape[0]
        shifts = self.jitter_rois[:, None, :2] * roi[None, :, 2:3]  # (K, B, 2)
        rois = torch.cat([roi[None, :, :2] + shifts, roi[None, :, 2:3] * self.jitter_rois[:, None, 2:3]], -1)
        rois = rois.reshape(-1, 3)
        repeated = images.repeat(self.jitter, 1, 1, 1)
        points, rotation = self._decode(self._params(repeated, rois), rois)
        return points.reshape(self.jitter, batch, 68, 3).mean(0), rotation.reshape(self.jitter, batch, 3, 3).mean(0)

    def forward(self, images: torch.Tensor) -> dict:
        roi = self.roi0 + torch.zeros_like(images[:, 0, 0, :3])  # (B, 3), batch size kept symbolic for export
        if self.passes == 2:
            points, _ = self._decode(self._params(images, roi), roi)
            roi = roi_from_points(points[..., :2])
        points, rotation = self._jittered(images, roi)
        return {"landmarks": points[..., :2], "points3d": points, "rotation": rotation}


def load_tddfa(folder: str | os.PathLike, passes: int = 1, pixel_centres: bool = False,
               jitter: int = 1) -> tuple[TDDFALandmarks, dict]:
    """The teacher and its meta (input size 384: it reads the whole challenge crop)."""
    model = TDDFALandmarks(folder, passes, pixel_centres, jitter)
    meta = {"input_size": 384, "gamma": 1.0, "gamma_mode": "fixed", "size_mb": _size_mb(model.net),
            "params": int(sum(p.numel() for p in model.net.parameters())),
            "weights_sha256": hashlib.sha256((Path(folder) / WEIGHTS_FILE).read_bytes()).hexdigest()}
    return model, meta


def _size_mb(net: nn.Module) -> float:
    return float(sum(np.prod(t.shape) for k, t in net.state_dict().items() if "num_batches" not in k) * 4 / 2**20)
