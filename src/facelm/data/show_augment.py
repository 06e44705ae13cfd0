"""``facelm show-augment DIR OUT.png``: a grid of augmented samples with their landmarks drawn,
so a person can check that the points follow the face through every transform."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from facelm.atomic import atomic_path
from facelm.config import augment_settings, load_config
from facelm.data.augment import build_augment
from facelm.data.batch_augment import build_batch_augment
from facelm.errors import FacelmError
from facelm.data.folder import imread_rgb, open_folder
from facelm.data.limits import positive_int
from facelm.landmarks68 import GROUPS
from facelm.data.preprocess import preprocess_uint8


def draw_landmarks(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points (green) and their curves (yellow) on a copy of an RGB image; point 0 and 36 marked red."""
    out = image.copy()
    for idx in GROUPS.values():
        cv2.polylines(out, [np.round(points[idx] * 16).astype(np.int32).reshape(-1, 1, 2)], False, (230, 220, 0), 1,
                      cv2.LINE_AA, 4)
    for i, (x, y) in enumerate(points):
        cv2.circle(out, (int(round(x * 16)), int(round(y * 16))), 2 * 16, (255, 0, 0) if i in (0, 36) else (0, 220, 0),
                   -1, cv2.LINE_AA, 4)
    return out


def augment_grid(folder, n: int = 16, size: int = 256, seed: int = 0, augment_cfg=None) -> np.ndarray:
    """``n`` augmented samples of ``folder`` as one RGB grid, through the configured backend (``batch``: the
    OpenCV executor a CPU trains with; ``albumentations``: per sample)."""
    faces = open_folder(folder)
    if not faces.labelled:
        raise FacelmError("needs a labelled folder (annot.pkl) to draw landmarks", folder)
    settings = augment_settings(augment_cfg)
    images, landmarks = [], []
    for k in range(n):
        i = k % len(faces)
        raw = imread_rgb(faces.path(faces.names[i]))
        images.append(preprocess_uint8(raw[None], size)[0])
        landmarks.append(faces.landmarks[i] * (size / raw.shape[1]))
    if settings.backend == "batch":
        augment = build_batch_augment(settings, size, "opencv")
        batch, points = augment(torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2),
                                torch.from_numpy(np.stack(landmarks) / size), torch.Generator().manual_seed(seed))
        pairs = zip(batch.permute(0, 2, 3, 1).numpy(), points.numpy() * size)
    else:
        augment = build_augment(settings, size)
        pairs = (augment(image, points, seed=seed * 100003 + k) for k, (image, points) in enumerate(zip(images, landmarks)))
    tiles = [draw_landmarks(np.ascontiguousarray(image), points) for image, points in pairs]
    cols = int(np.ceil(np.sqrt(n)))
    tiles += [np.zeros_like(tiles[0])] * (cols * cols - len(tiles))
    rows = [np.hstack(tiles[r * cols : (r + 1) * cols]) for r in range(len(tiles) // cols)]
    return np.vstack(rows)


def add_arguments(parser) -> None:
    parser.add_argument("folder", help="labelled challenge-format folder")
    parser.add_argument("out", help="PNG to write")
    parser.add_argument("--n", type=positive_int, default=16)
    parser.add_argument("--size", type=positive_int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config", help="take the augment settings from this config (default: the defaults)")


def main(args) -> int:
    cfg = load_config(args.config).augment if args.config else None
    grid = augment_grid(args.folder, args.n, args.size, args.seed, cfg)
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    with atomic_path(args.out) as tmp:
        tmp.write_bytes(encoded.tobytes())
    print(f"{args.out}: {args.n} augmented samples")
    return 0
