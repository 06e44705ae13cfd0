"""Batch augmentation by tensor operations on the training device (the executor for a GPU).

The per-sample path (:mod:`facelm.data.augment`, albumentations in DataLoader workers) costs
about 0.5-1.5 ms of CPU per 128 px sample, so on a machine with a GPU the CPU, not the GPU, would
set the pace. :class:`BatchAugment` applies a batch's draws (:mod:`facelm.data.batch_draws`: each
sample its own parameters) to a (B,3,S,S) batch with a handful of tensor operations:

* geometry: horizontal flip, affine (rotation about the centre, scale, shift) and perspective (a
  random inner quadrilateral stretched to the crop, like ``A.Perspective(keep_size=True)``) as one
  3x3 homography per sample, applied with one ``grid_sample``; the points go through the same
  matrix, so they move exactly with the pixels;
* colour: brightness, contrast, saturation and hue (a rotation in YIQ space) as one per-sample
  affine colour map; random grayscale;
* box blur (kernel 3..``blur_limit``), JPEG artefacts (8x8 block DCT of YCbCr with 4:2:0 chroma,
  quantised with the IJG tables at a per-sample quality), one rectangular occluder.

The ``augment:`` settings are the per-sample path's (same keys and meaning). On a CPU the same
draws run faster through OpenCV (:mod:`facelm.data.opencv_augment`); :func:`build_batch_augment`
picks the executor.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from facelm.config import Augment as AugmentSettings
from facelm.data.batch_draws import GRAY, BatchAugmentBase, Draws
from facelm.data.opencv_augment import OpenCVBatchAugment
from facelm.errors import FacelmError

_RGB_TO_YCBCR = ((0.299, 0.587, 0.114), (-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))

#: IJG (libjpeg) base quantisation tables, quality 50.
_JPEG_LUMA = (
    (16, 11, 10, 16, 24, 40, 51, 61), (12, 12, 14, 19, 26, 58, 60, 55), (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62), (18, 22, 37, 56, 68, 109, 103, 77), (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101), (72, 92, 95, 98, 112, 100, 103, 99),
)
_JPEG_CHROMA = tuple((17, 18, 24, 47, 99, 99, 99, 99) if r == 0 else (18, 21, 26, 66, 99, 99, 99, 99) if r == 1
                     else (24, 26, 56, 99, 99, 99, 99, 99) if r == 2 else (47, 66, 99, 99, 99, 99, 99, 99) if r == 3
                     else (99,) * 8 for r in range(8))


def _dct_matrix(n: int = 8) -> torch.Tensor:
    """Orthonormal DCT-II matrix (rows are the basis functions)."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    m = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2 / n)
    m[0] /= math.sqrt(2)
    return m.float()


def box_blur(images: torch.Tensor, k: int) -> torch.Tensor:
    """Mean over k x k windows (odd k), borders reflected like cv2.blur (BORDER_REFLECT_101)."""
    r = k // 2
    padded = F.pad(images, (r + 1, r, r + 1, r), mode="reflect")
    padded[..., 0, :] = 0  # the extra leading row/column turns the cumulative sums into window sums
    padded[..., :, 0] = 0
    rows = padded.cumsum(-1)
    rows = rows[..., k:] - rows[..., :-k]
    cols = rows.cumsum(-2)
    return (cols[..., k:, :] - cols[..., :-k, :]) / (k * k)


class BatchAugment(BatchAugmentBase):
    """The torch executor: ``(images (B,3,S,S) uint8|float 0..255, landmarks, generator) -> (float32 images, landmarks)``,
    every transform a tensor operation on the whole batch, on the images' device."""

    def __init__(self, cfg: AugmentSettings | Mapping[str, Any] | None, size: int):
        super().__init__(cfg, size)
        self._dct = _dct_matrix()
        self._quant = torch.tensor([_JPEG_LUMA, _JPEG_CHROMA], dtype=torch.float32)

    def _warp(self, images: torch.Tensor, forward: torch.Tensor) -> torch.Tensor:
        """Output pixel centres through the inverse homographies -> input positions -> bilinear sampling."""
        s = images.shape[-1]
        g = (2 * torch.arange(s, device=images.device, dtype=torch.float32) + 1) / s - 1
        gx, gy = g[None, None, :], g[None, :, None]
        h = torch.linalg.inv(forward).to(images.device)[:, :, :, None, None]  # (B,3,3,1,1)
        xyw = h[:, :, 0] * gx + h[:, :, 1] * gy + h[:, :, 2]  # (B,3,S,S)
        grid = (xyw[:, :2] / xyw[:, 2:]).permute(0, 2, 3, 1)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def _colour(self, images: torch.Tensor, draws: Draws) -> torch.Tensor:
        dev, n = images.device, images.shape[0]
        mean = images.mean((2, 3)) @ torch.tensor(GRAY, device=dev)
        offset = draws.colour_offset.to(dev) * mean[:, None]
        out = torch.baddbmm(offset[:, :, None], draws.colour.to(dev), images.reshape(n, 3, -1))
        return out.clamp_(0, 255).reshape(images.shape)

    @staticmethod
    def _blur(images: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        for k in kernel[kernel > 0].unique().tolist():
            idx = torch.nonzero(kernel == k).flatten().to(images.device)
            images[idx] = box_blur(images[idx], k)
        return images

    def _jpeg(self, images: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
        idx = torch.nonzero(quality > 0).flatten()
        if not len(idx):
            return images
        dev = images.device
        q = quality[idx].float()
        factor = torch.where(q < 50, 5000 / q, 200 - 2 * q)
        tables = ((self._quant[None] * factor[:, None, None, None] + 50) / 100).floor().clamp(1, 255).to(dev)
        sel = images[idx.to(dev)]
        s = sel.shape[-1]
        pad = (-s) % 16
        if pad:
            sel = F.pad(sel, (0, pad, 0, pad), mode="replicate")
        ycc = torch.einsum("ij,bjhw->bihw", torch.tensor(_RGB_TO_YCBCR, device=dev), sel)
        ycc[:, 0] -= 128
        luma = self._quantise(ycc[:, :1], tables[:, 0])
        chroma = self._quantise(F.avg_pool2d(ycc[:, 1:], 2), tables[:, 1])
        chroma = F.interpolate(chroma, scale_factor=2, mode="bilinear", align_corners=False)
        ycc = torch.cat([luma + 128, chroma], 1)
        rgb = torch.einsum("ij,bjhw->bihw", torch.linalg.inv(torch.tensor(_RGB_TO_YCBCR)).to(dev), ycc)
        images[idx.to(dev)] = rgb[..., :s, :s].clamp(0, 255)
        return images

    def _quantise(self, planes: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """8x8 block DCT of (B,C,H,W) planes (H, W multiples of 8), quantised by (B,8,8) tables, and back."""
        b, ch, h, w = planes.shape
        d = self._dct.to(planes.device)
        blocks = planes.reshape(b, ch, h // 8, 8, w // 8, 8).transpose(3, 4)  # (b, c, by, bx, 8, 8)
        coef = d @ blocks @ d.T
        t = table[:, None, None, None]
        coef = torch.round(coef / t) * t
        return (d.T @ coef @ d).transpose(3, 4).reshape(b, ch, h, w)

    @staticmethod
    def _occlude(images: torch.Tensor, occluder: torch.Tensor) -> torch.Tensor:
        idx = torch.nonzero(occluder[:, 2] > 0).flatten()
        if not len(idx):
            return images
        r = torch.arange(images.shape[-1])
        start, end = occluder[idx, :2], occluder[idx, :2] + occluder[idx, 2:]
        rows = (r >= start[:, :1]) & (r < end[:, :1])
        cols = (r >= start[:, 1:]) & (r < end[:, 1:])
        keep = ~(rows[:, :, None] & cols[:, None, :])
        dev_idx = idx.to(images.device)
        images[dev_idx] = images[dev_idx] * keep[:, None].to(images.device)
        return images

    def apply_pixels(self, images: torch.Tensor, draws: Draws) -> torch.Tensor:
        """The drawn transforms on (B,3,S,S) pixels -> float32 (B,3,S,S)."""
        images = self._warp(images.float(), draws.forward)
        images = self._colour(images, draws)
        images = self._blur(images, draws.blur)
        images = self._jpeg(images, draws.jpeg)
        return self._occlude(images, draws.occluder)


#: executor name -> class: "torch" for a GPU (tensors on the device), "opencv" for a CPU (uint8, per sample).
EXECUTORS = {"torch": BatchAugment, "opencv": OpenCVBatchAugment}


def build_batch_augment(cfg: AugmentSettings | Mapping[str, Any] | None, size: int,
                        executor: str = "torch") -> BatchAugmentBase:
    """The batch augmentation for ``size`` x ``size`` crops (same settings as :func:`facelm.data.augment.build_augment`),
    run by ``executor`` (a key of :data:`EXECUTORS`; all apply the same draws)."""
    if executor not in EXECUTORS:
        raise FacelmError(f"unknown batch-augment executor {executor!r}; choose one of {', '.join(EXECUTORS)}")
    return EXECUTORS[executor](cfg, size)
