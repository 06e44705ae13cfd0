"""The batch augmentation's draws executed by OpenCV on uint8 pixels: the fast path on a CPU.

:mod:`facelm.data.batch_draws` draws each batch's parameters once; :class:`facelm.data.batch_augment.BatchAugment`
applies them with tensor operations, which suits a GPU. On a CPU those float32 operations cost more than
the transforms need (a bilinear ``grid_sample`` alone is about 0.27 ms per 128 px sample on one
core). :class:`OpenCVBatchAugment` applies the *same draws* (same generator, same order, so a
run's samples get the same flips, angles, colours, kernels, qualities and occluders on either
path) with one OpenCV call per transform and sample on uint8 images, which needs no float
conversion and writes uint8 batches (a quarter of the bytes of float32 to hand from a DataLoader
worker to the trainer):

* geometry: ``cv2.warpAffine``, or ``cv2.warpPerspective`` for a perspective draw (bilinear, black border), with the drawn homography moved
  from grid coordinates ``g = 2 (x + 0.5) / S - 1`` (OpenCV puts pixel centres on integers) to
  pixels (:func:`grid_to_pixels`); the points go through :meth:`BatchAugmentBase.move_points`, the same matrix;
* colour: ``cv2.transform`` with the drawn 3x3 map and the offset from the image's mean grey;
* box blur: ``cv2.blur`` (reflected border, like the torch path);
* JPEG artefacts: a real ``cv2.imencode`` / ``cv2.imdecode`` round trip at the drawn quality;
* occluder: the drawn black rectangle.

The pixels differ from the torch executor's only by rounding to uint8 at each step, by
OpenCV's 1/32-pixel interpolation grid, and by real instead of simulated JPEG coding.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from facelm.data.batch_draws import GRAY, BatchAugmentBase, Draws


def grid_to_pixels(size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(T, T^-1)``: ``T`` maps OpenCV pixel coordinates (pixel ``i``'s centre at ``i``) to grid coordinates
    (``g`` in [-1, 1] over the crop's outer edges); a grid homography ``H`` is ``T^-1 H T`` in pixels."""
    to_g = np.array([[2 / size, 0, 1 / size - 1], [0, 2 / size, 1 / size - 1], [0, 0, 1]])
    return to_g, np.linalg.inv(to_g)


class OpenCVBatchAugment(BatchAugmentBase):
    """``(images (B,3,S,S) uint8, landmarks (B,68,2) normalised, generator) -> (uint8 images, landmarks)``."""

    def apply_pixels(self, images: torch.Tensor, draws: Draws) -> torch.Tensor:
        s = self.size
        if images.dtype != torch.uint8:
            images = images.round().clamp(0, 255).to(torch.uint8)
        pixels = images.permute(0, 2, 3, 1).numpy()  # channels last: a view when the batch came from a cache
        out = np.empty(pixels.shape, np.uint8)
        forward = draws.forward.double().numpy()
        moved = ~np.isclose(forward, np.eye(3), atol=1e-9).all((1, 2))
        colour = np.concatenate([draws.colour.double().numpy(), draws.colour_offset.double().numpy()[:, :, None]], 2)
        colour_on, blur, jpeg = draws.colour_on.numpy(), draws.blur.numpy(), draws.jpeg.numpy()
        occluder = draws.occluder.numpy()
        gray = np.array(GRAY)
        to_g, from_g = grid_to_pixels(s)
        for i in range(len(pixels)):
            image = pixels[i]
            if moved[i]:
                matrix = from_g @ forward[i] @ to_g
                if np.abs(matrix[2, :2]).max() < 1e-7:  # no perspective draw (float32 round-off only): affine is cheaper
                    image = cv2.warpAffine(image, matrix[:2] / matrix[2, 2], (s, s), flags=cv2.INTER_LINEAR,
                                           borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
                else:
                    image = cv2.warpPerspective(image, matrix, (s, s), flags=cv2.INTER_LINEAR,
                                                borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
            if colour_on[i]:
                matrix = colour[i].copy()
                matrix[:, 3] *= float(np.dot(cv2.mean(image)[:3], gray))
                image = cv2.transform(image, matrix)
            if blur[i]:
                image = cv2.blur(image, (int(blur[i]), int(blur[i])))
            if jpeg[i]:
                ok, code = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(jpeg[i])])
                image = cv2.imdecode(code, cv2.IMREAD_COLOR)[:, :, ::-1]
            out[i] = image
            top, left, height, width = occluder[i]
            if height:
                out[i, top : top + height, left : left + width] = 0
        return torch.from_numpy(out).permute(0, 3, 1, 2)
