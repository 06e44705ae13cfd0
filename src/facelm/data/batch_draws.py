"""The random parameters of batch augmentation: drawn once per batch, applied by either executor.

:class:`BatchAugmentBase` draws, for a batch of B samples, each sample's flip, affine and
perspective (composed into one 3x3 homography), colour map, blur kernel, JPEG quality and
occluder (:class:`Draws`), in a fixed order from the ``torch.Generator`` the caller passes (the
trainer seeds it from ``(seed, epoch, step)``), on the CPU. So a batch's augmentation does not
depend on the device, on the number of DataLoader workers, or on the executor that applies it:
:class:`facelm.data.batch_augment.BatchAugment` (tensor operations, for a GPU) or
:class:`facelm.data.opencv_augment.OpenCVBatchAugment` (OpenCV on uint8, for a CPU).

Coordinates: landmarks are normalised, ``u = x / S`` with facelm's convention (pixel ``i``
covers ``[i, i+1)``); all geometry is done in grid coordinates ``g = 2u - 1``, which put -1 and
+1 on the outer edges of the border pixels (``grid_sample(align_corners=False)``'s convention).
The points go through the same homography as the pixels and, where a sample was mirrored, are
re-ordered with :data:`facelm.landmarks68.FLIP_PERM`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from typing import Any, Mapping

import torch

from facelm.config import Augment as AugmentSettings
from facelm.config import augment_settings
from facelm.data.augment import MIN_OCCLUSION_FRAC
from facelm.errors import FacelmError
from facelm.landmarks68 import FLIP_PERM, NUM_POINTS

#: Luma weights of RGB (ITU-R BT.601): the grey of the grayscale draw and of the contrast pivot.
GRAY = (0.299, 0.587, 0.114)
_RGB_TO_YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))


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


@dataclass(frozen=True)
class Draws:
    """One batch's augmentation parameters, drawn on the CPU by :meth:`BatchAugmentBase.draw` (so the
    torch and the OpenCV executors, on any device, apply the same ones)."""

    forward: torch.Tensor  # (B,3,3) homographies, input g -> output g (flip, affine, perspective)
    flip: torch.Tensor  # (B,) bool: the points must be re-ordered with FLIP_PERM
    colour: torch.Tensor  # (B,3,3) colour map (brightness x contrast gain, saturation or grey, hue)
    colour_offset: torch.Tensor  # (B,3) added offset per unit of the input's mean grey (contrast pivot)
    colour_on: torch.Tensor  # (B,) bool: colour jitter or grey applies (otherwise the map is the identity)
    blur: torch.Tensor  # (B,) box-blur kernel side, 0 = none
    jpeg: torch.Tensor  # (B,) JPEG quality, 0 = none
    occluder: torch.Tensor  # (B,4) top, left, height, width of the black rectangle; height 0 = none

    def share(self, rank: int, world: int) -> "Draws":
        """Slice ``rank`` of ``world`` equal slices: one DDP process's share of a global batch's draws."""
        if world == 1:
            return self
        n = len(self.flip) // world
        return Draws(**{f.name: getattr(self, f.name)[rank * n : (rank + 1) * n] for f in fields(self)})


class BatchAugmentBase(ABC):
    """``(images (B,3,S,S), landmarks (B,68,2) normalised, generator) -> (images, landmarks)``: draws, then
    :meth:`apply_pixels` of the executor (a subclass)."""

    def __init__(self, cfg: AugmentSettings | Mapping[str, Any] | None, size: int):
        self.cfg = augment_settings(cfg)
        self.size = int(size)
        self._flip_perm = torch.as_tensor(FLIP_PERM, dtype=torch.long)

    # ------------------------------------------------------------------ draws
    def draw(self, n: int, gen: torch.Generator) -> Draws:
        """The parameters of ``n`` samples, in a fixed order of draws from ``gen``."""
        forward, flip = self._draw_geometry(n, gen)
        colour, colour_offset, colour_on = self._draw_colour(n, gen)
        c, s = self.cfg, self.size
        blur_on = torch.rand(n, generator=gen) < c.blur_p
        sizes = torch.arange(3, int(c.blur_limit) + 1, 2)
        blur = sizes[torch.randint(len(sizes), (n,), generator=gen)] * blur_on
        jpeg_on = torch.rand(n, generator=gen) < c.jpeg_p
        jpeg = torch.randint(int(c.jpeg_quality_min), 101, (n,), generator=gen) * jpeg_on
        hi = max(1, round(c.occlusion_max_frac * s))
        lo = min(hi, max(1, round(MIN_OCCLUSION_FRAC * s)))
        occluded = torch.rand(n, generator=gen) < c.occlusion_p
        hw = torch.randint(lo, hi + 1, (n, 2), generator=gen)
        top_left = (torch.rand(n, 2, generator=gen) * (s - hw + 1)).floor().long()
        occluder = torch.cat([top_left, hw * occluded[:, None]], 1)
        return Draws(forward, flip, colour, colour_offset, colour_on, blur, jpeg, occluder)

    def _draw_geometry(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
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

    def _draw_colour(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Brightness x b, contrast k towards the mean grey m0 of the input, saturation (or grey), hue as
        ``out = (b k M) x + (1 - k) b (M 1) m0``: returns ``b k M``, ``(1 - k) b (M 1)`` and whether it applies."""
        c = self.cfg
        u = torch.rand(n, 6, generator=gen)
        on = u[:, 0] < c.color_p
        b = torch.where(on, 1 + (2 * u[:, 1] - 1) * c.brightness, torch.ones(n))
        k = torch.where(on, 1 + (2 * u[:, 2] - 1) * c.contrast, torch.ones(n))
        sat = torch.where(on, 1 + (2 * u[:, 3] - 1) * c.saturation, torch.ones(n))
        hue = (2 * u[:, 4] - 1) * c.hue * 2 * math.pi * on
        gray = u[:, 5] < c.grayscale_p
        w = torch.tensor(GRAY)
        to_yiq = torch.tensor(_RGB_TO_YIQ)
        rot = torch.zeros(n, 3, 3)
        rot[:, 0, 0] = 1
        rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = hue.cos(), -hue.sin(), hue.sin(), hue.cos()
        hue_map = torch.linalg.inv(to_yiq) @ rot @ to_yiq
        sat_map = sat[:, None, None] * torch.eye(3) + (1 - sat[:, None, None]) * w.expand(3, 3)
        sat_map = torch.where(gray[:, None, None], w.expand(3, 3), sat_map)
        colour_map = hue_map @ sat_map
        return colour_map * (b * k)[:, None, None], colour_map.sum(-1) * ((1 - k) * b)[:, None], on | gray

    @abstractmethod
    def apply_pixels(self, images: torch.Tensor, draws: Draws) -> torch.Tensor:
        """The drawn transforms on (B,3,S,S) pixels."""

    # ------------------------------------------------------------------ all
    def move_points(self, landmarks: torch.Tensor, draws: Draws) -> torch.Tensor:
        """Normalised (B,68,2) points through the drawn geometry, re-ordered where a sample was mirrored."""
        points = apply_homography(draws.forward.to(landmarks.device), landmarks.float() * 2 - 1) * 0.5 + 0.5
        flipped = draws.flip.to(landmarks.device)[:, None, None]
        return torch.where(flipped, points[:, self._flip_perm.to(points.device)], points)

    def __call__(self, images: torch.Tensor, landmarks: torch.Tensor, generator: torch.Generator,
                 rank: int = 0, world: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment a batch; under DDP (``world`` > 1) the batch is this process's share of a global batch
        of ``world`` x B samples, whose draws are made whole and then shared out (:meth:`Draws.share`)."""
        n = images.shape[0]
        if images.ndim != 4 or images.shape[1:] != (3, self.size, self.size):
            raise FacelmError(f"batch augment expects images (B, 3, {self.size}, {self.size}), got {tuple(images.shape)}")
        if landmarks.shape != (n, NUM_POINTS, 2):
            raise FacelmError(f"batch augment expects landmarks ({n}, 68, 2), got {tuple(landmarks.shape)}")
        draws = self.draw(n * world, generator).share(rank, world)
        return self.apply_pixels(images, draws), self.move_points(landmarks, draws)
