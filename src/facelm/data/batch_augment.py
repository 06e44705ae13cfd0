"""Keypoint-aware augmentation of whole batches of tensors, on the training device.

The per-sample path (:mod:`facelm.data.augment`, albumentations in DataLoader workers) costs
about 1.5 ms of CPU per 128 px sample, so on a machine with a GPU the CPU, not the GPU, sets
the pace. :class:`BatchAugment` does the same kinds of transforms to a (B,3,S,S) batch with a
handful of tensor operations, each sample with its own random parameters:

* geometry: horizontal flip (points re-ordered with :data:`facelm.landmarks68.FLIP_PERM`), affine
  (rotation about the centre, scale, shift) and perspective (a random inner quadrilateral
  stretched to the crop, like ``A.Perspective(keep_size=True)``), composed into one 3x3
  homography per sample and applied with one ``grid_sample``; the points go through the same
  matrix, so they move exactly with the pixels;
* colour: brightness, contrast, saturation and hue (a rotation in YIQ space) as one per-sample
  affine colour map; random grayscale;
* box blur (kernel 3..``blur_limit``), JPEG artefacts (8x8 block DCT of YCbCr with 4:2:0 chroma,
  quantised with the IJG tables at a per-sample quality), one rectangular occluder.

The ``augment:`` settings are the per-sample path's (same keys and meaning).

Coordinates: landmarks are normalised, ``u = x / S`` with facelm's convention (pixel ``i``
covers ``[i, i+1)``). ``grid_sample(align_corners=False)`` uses the same convention: grid
coordinate ``g = 2u - 1`` puts -1 and +1 on the outer edges of the border pixels. All
geometry is done in ``g``.

Determinism: every draw comes from the ``torch.Generator`` the caller passes (the trainer
seeds it from ``(seed, epoch, step)``), on the CPU, so a batch's augmentation does not depend
on the device or on the number of DataLoader workers.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from facelm.config import Augment as AugmentSettings
from facelm.config import augment_settings
from facelm.data.augment import MIN_OCCLUSION_FRAC
from facelm.errors import FacelmError
from facelm.landmarks68 import FLIP_PERM, NUM_POINTS

_GRAY = (0.299, 0.587, 0.114)
_RGB_TO_YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))
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


def homography_from_points(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """(B,3,3) homographies mapping the 4 points ``src`` (B,4,2) onto ``dst`` (B,4,2)."""
    x, y = src[..., 0], src[..., 1]
    u, v = dst[..., 0], dst[..., 1]
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rows_u = torch.stack([x, y, one, zero, zero, zero, -u * x, -u * y], -1)
    rows_v = torch.stack([zero, zero, zero, x, y, one, -v * x, -v * y], -1)
    system = torch.cat([rows_u, rows_v], 1).double()
    h = torch.linalg.solve(system, torch.cat([u, v], 1).double().unsqueeze(-1)).squeeze(-1)
    return torch.cat([h, torch.ones_like(h[:, :1])], 1).reshape(-1, 3, 3).to(src.dtype)


def apply_homography(matrix: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Points (B,N,2) through (B,3,3) homographies."""
    out = torch.cat([points, torch.ones_like(points[..., :1])], -1) @ matrix.transpose(1, 2)
    return out[..., :2] / out[..., 2:]


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


class BatchAugment:
    """``(images (B,3,S,S) uint8|float 0..255, landmarks (B,68,2) normalised, generator) -> (float32 images, landmarks)``."""

    def __init__(self, cfg: AugmentSettings | Mapping[str, Any] | None, size: int):
        self.cfg = augment_settings(cfg)
        self.size = int(size)
        self._flip_perm = torch.as_tensor(FLIP_PERM, dtype=torch.long)
        self._dct = _dct_matrix()
        self._quant = torch.tensor([_JPEG_LUMA, _JPEG_CHROMA], dtype=torch.float32)

    # ------------------------------------------------------------------ geometry
    def _geometry(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample forward homographies (input g -> output g) and which samples are flipped."""
        c = self.cfg
        u = torch.rand(n, 8, generator=gen)
        flip = u[:, 0] < c.hflip_p
        affine = u[:, 1] < c.affine_p
        angle = torch.deg2rad((2 * u[:, 2] - 1) * c.rotate_deg) * affine
        scale = torch.where(affine, 1 + (2 * u[:, 3] - 1) * c.scale, torch.ones(n))
        shift = 2 * (2 * u[:, 4:6] - 1) * c.shift * affine[:, None]  # fraction of the side -> g units
        cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
        matrix = torch.zeros(n, 3, 3)
        matrix[:, 0, 0], matrix[:, 0, 1], matrix[:, 0, 2] = cos, -sin, shift[:, 0]
        matrix[:, 1, 0], matrix[:, 1, 1], matrix[:, 1, 2] = sin, cos, shift[:, 1]
        matrix[:, 2, 2] = 1
        matrix[:, :, 0] *= torch.where(flip, -1.0, 1.0)[:, None]  # mirror first: x -> -x
        corners = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]]).expand(n, 4, 2)
        sigma = u[:, 7] * c.perspective_scale * (u[:, 6] < c.perspective_p)
        inward = torch.randn(n, 4, 2, generator=gen).abs() * sigma[:, None, None] * 2 * -corners.sign()
        perspective = homography_from_points(corners + inward, corners)
        return perspective @ matrix, flip

    def _warp(self, images: torch.Tensor, forward: torch.Tensor) -> torch.Tensor:
        """Output pixel centres through the inverse homographies -> input positions -> bilinear sampling."""
        s = images.shape[-1]
        g = (2 * torch.arange(s, device=images.device, dtype=torch.float32) + 1) / s - 1
        gx, gy = g[None, None, :], g[None, :, None]
        h = torch.linalg.inv(forward).to(images.device)[:, :, :, None, None]  # (B,3,3,1,1)
        xyw = h[:, :, 0] * gx + h[:, :, 1] * gy + h[:, :, 2]  # (B,3,S,S)
        grid = (xyw[:, :2] / xyw[:, 2:]).permute(0, 2, 3, 1)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    # ------------------------------------------------------------------ photometric
    def _colour(self, images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        c, n = self.cfg, images.shape[0]
        u = torch.rand(n, 6, generator=gen)
        on = u[:, 0] < c.color_p
        b = torch.where(on, 1 + (2 * u[:, 1] - 1) * c.brightness, torch.ones(n))
        k = torch.where(on, 1 + (2 * u[:, 2] - 1) * c.contrast, torch.ones(n))
        sat = torch.where(on, 1 + (2 * u[:, 3] - 1) * c.saturation, torch.ones(n))
        hue = (2 * u[:, 4] - 1) * c.hue * 2 * math.pi * on
        gray = u[:, 5] < c.grayscale_p
        w = torch.tensor(_GRAY)
        to_yiq = torch.tensor(_RGB_TO_YIQ)
        rot = torch.zeros(n, 3, 3)
        rot[:, 0, 0] = 1
        rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = hue.cos(), -hue.sin(), hue.sin(), hue.cos()
        hue_map = torch.linalg.inv(to_yiq) @ rot @ to_yiq
        sat_map = sat[:, None, None] * torch.eye(3) + (1 - sat[:, None, None]) * w.expand(3, 3)
        sat_map = torch.where(gray[:, None, None], w.expand(3, 3), sat_map)
        # brightness x*b, contrast towards the mean grey m of x*b, then saturation/grey and hue (one map M):
        # out = M (k b x + (1 - k) b m0), m0 = mean grey of x
        colour_map = hue_map @ sat_map
        dev = images.device
        mean = images.mean((2, 3)) @ w.to(dev)
        offset = (colour_map.sum(-1) * ((1 - k) * b)[:, None]).to(dev) * mean[:, None]
        flat = images.reshape(n, 3, -1)
        out = torch.baddbmm(offset[:, :, None], (colour_map * (b * k)[:, None, None]).to(dev), flat)
        return out.clamp_(0, 255).reshape(images.shape)

    def _blur(self, images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        c, n = self.cfg, images.shape[0]
        on = torch.rand(n, generator=gen) < c.blur_p
        sizes = torch.arange(3, int(c.blur_limit) + 1, 2)
        kernel = sizes[torch.randint(len(sizes), (n,), generator=gen)]
        for k in sizes.tolist():
            idx = torch.nonzero(on & (kernel == k)).flatten().to(images.device)
            if len(idx):
                images[idx] = box_blur(images[idx], k)
        return images

    def _jpeg(self, images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        c, n = self.cfg, images.shape[0]
        on = torch.rand(n, generator=gen) < c.jpeg_p
        quality = torch.randint(int(c.jpeg_quality_min), 101, (n,), generator=gen).float()
        idx = torch.nonzero(on).flatten()
        if not len(idx):
            return images
        dev = images.device
        q = quality[idx]
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

    def _occlude(self, images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        c, (n, _, s, _) = self.cfg, images.shape
        hi = max(1, round(c.occlusion_max_frac * s))
        lo = min(hi, max(1, round(MIN_OCCLUSION_FRAC * s)))
        on = torch.rand(n, generator=gen) < c.occlusion_p
        hw = torch.randint(lo, hi + 1, (n, 2), generator=gen)
        top_left = (torch.rand(n, 2, generator=gen) * (s - hw + 1)).floor().long()
        idx = torch.nonzero(on).flatten()
        if not len(idx):
            return images
        r = torch.arange(s)
        start, end = top_left[idx], (top_left + hw)[idx]
        rows = (r >= start[:, :1]) & (r < end[:, :1])
        cols = (r >= start[:, 1:]) & (r < end[:, 1:])
        keep = ~(rows[:, :, None] & cols[:, None, :])
        dev_idx = idx.to(images.device)
        images[dev_idx] = images[dev_idx] * keep[:, None].to(images.device)
        return images

    # ------------------------------------------------------------------ all
    def __call__(self, images: torch.Tensor, landmarks: torch.Tensor, generator: torch.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        n = images.shape[0]
        if images.ndim != 4 or images.shape[1:] != (3, self.size, self.size):
            raise FacelmError(f"batch augment expects images (B, 3, {self.size}, {self.size}), got {tuple(images.shape)}")
        if landmarks.shape != (n, NUM_POINTS, 2):
            raise FacelmError(f"batch augment expects landmarks ({n}, 68, 2), got {tuple(landmarks.shape)}")
        images = images.float()
        forward, flip = self._geometry(n, generator)
        images = self._warp(images, forward)
        points = apply_homography(forward.to(landmarks.device), landmarks.float() * 2 - 1) * 0.5 + 0.5
        flipped = flip.to(landmarks.device)[:, None, None]
        points = torch.where(flipped, points[:, self._flip_perm.to(points.device)], points)
        images = self._colour(images, generator)
        images = self._blur(images, generator)
        images = self._jpeg(images, generator)
        images = self._occlude(images, generator)
        return images, points


def build_batch_augment(cfg: AugmentSettings | Mapping[str, Any] | None, size: int) -> BatchAugment:
    """The batch augmentation for ``size`` x ``size`` crops (same settings as :func:`facelm.data.augment.build_augment`)."""
    return BatchAugment(cfg, size)
