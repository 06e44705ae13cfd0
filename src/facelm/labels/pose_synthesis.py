"""Pose synthesis (face profiling, after Zhu et al.'s 300W-LP): new views of a labelled face, turned further in yaw.

    facelm synthesize-poses SRC OUT --bfm ../shared/models/3ddfa_v2 [--views 2] [--yaw-min 40 --yaw-max 85] [--seed 0]

For each face of ``SRC`` (challenge format, labelled):

1. the 68-point BFM is fitted to its labels (:meth:`facelm.models.bfm.BFM68.fit`): 3D points and pose;
2. anchors are added for what the 68 points do not cover: a forehead row above the brows, and an
   outer ring (jaw and forehead pushed outwards and back: cheeks, ears, hair), which turn with the
   head, plus fixed points on the crop border, which do not (the background stays put);
3. the head turns about a vertical axis behind the face, to a target |yaw| drawn uniformly in the
   range (the face turns the way it already faces; a frontal face either way);
4. the image is warped by a triangle mesh over the source points (Delaunay), triangle by
   triangle, far ones first (painter's algorithm), and triangles that fold over (their winding
   flips: they now face away) are culled;
5. the labels are the turned, projected 3D points: hidden jaw points sit on the 3D jaw, the
   convention of the AFLW2000-3D labels.

Where it breaks down: the 68 points carry no geometry of the ears, hair or neck, so past about
60 degrees the far cheek is squeezed onto a few triangles and the near side of the head is a
stretched copy of the cheek and background; glasses and hands in front of the face are warped
as if they were skin; the background next to the head is stretched, not filled in.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from scipy.spatial import Delaunay

from facelm.atomic import atomic_dir, write_json
from facelm.data.annot import save_annot
from facelm.data.folder import ANNOT_NAME, imread_bgr, open_folder
from facelm.data.limits import positive_int
from facelm.data.near_duplicates import add_eval_argument, closest_match, guard_images
from facelm.errors import FacelmError
from facelm.models.bfm import BFM68

RECORD_NAME = "synthesis.json"
JAW, BROWS = np.arange(17), np.arange(17, 27)
BORDER_STEPS = 6  # points per crop side (fixed anchors)


def head_anchors(points3d: np.ndarray) -> np.ndarray:
    """(68, 3) image-frame points -> (K, 3) anchors that turn with the head (forehead, outer ring)."""
    centre = points3d.mean(axis=0)
    width = np.ptp(points3d[JAW, 0]) + 1e-6
    height = points3d[8, 1] - points3d[BROWS, 1].mean()
    forehead = points3d[BROWS].copy()
    forehead[:, 1] -= 0.45 * height
    forehead[:, 2] -= 0.1 * width
    contour = np.concatenate([points3d[JAW], forehead[::-1]])
    ring = contour.copy()
    ring[:, :2] = centre[:2] + 1.3 * (contour[:, :2] - centre[:2])
    ring[:, 2] = contour[:, 2] - 0.35 * width
    return np.concatenate([forehead, ring])


def border_points(size: int) -> np.ndarray:
    """Fixed anchors on the crop border (2D)."""
    t = np.linspace(0, size - 1, BORDER_STEPS)
    zeros, ends = np.zeros_like(t), np.full_like(t, size - 1)
    pts = np.concatenate([np.stack([t, zeros], 1), np.stack([t, ends], 1), np.stack([zeros, t], 1), np.stack([ends, t], 1)])
    return np.unique(pts, axis=0)


def turn(points3d: np.ndarray, delta_deg: float) -> np.ndarray:
    """Rotate image-frame points about a vertical axis behind the face by ``delta_deg`` (+: to the image right)."""
    width = np.ptp(points3d[JAW, 0])
    axis = points3d[:68].mean(axis=0)
    axis[2] -= 0.6 * width
    a = np.radians(delta_deg)
    x, z = points3d[:, 0] - axis[0], points3d[:, 2] - axis[2]
    out = points3d.copy()
    out[:, 0] = axis[0] + np.cos(a) * x + np.sin(a) * z
    out[:, 2] = axis[2] - np.sin(a) * x + np.cos(a) * z
    return out


def _signed_area(tri: np.ndarray) -> np.ndarray:
    """(T, 3, 2) triangles -> (T,) twice their signed area."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])


def warp_mesh(image: np.ndarray, src: np.ndarray, dst: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Piecewise-affine warp of ``image`` by the Delaunay mesh of ``src`` -> ``dst`` (far triangles first)."""
    triangles = Delaunay(src).simplices
    src_tri, dst_tri = src[triangles], dst[triangles]
    keep = np.sign(_signed_area(src_tri)) == np.sign(_signed_area(dst_tri))  # folded triangles face away
    order = np.argsort(depth[triangles].mean(axis=1))  # ascending: far first
    out = image.copy()
    h, w = image.shape[:2]
    for t in order[keep[order]]:
        x0, y0 = np.floor(dst_tri[t].min(axis=0)).astype(int).clip(0, [w - 1, h - 1])
        x1, y1 = np.ceil(dst_tri[t].max(axis=0)).astype(int).clip(0, [w - 1, h - 1]) + 1
        if x1 - x0 < 1 or y1 - y0 < 1:
            continue
        local = (dst_tri[t] - [x0, y0]).astype(np.float32)
        matrix = cv2.getAffineTransform(src_tri[t].astype(np.float32), local)
        patch = cv2.warpAffine(image, matrix, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillConvexPoly(mask, np.round(local * 16).astype(np.int32), 1, lineType=cv2.LINE_8, shift=4)
        region = out[y0:y1, x0:x1]
        region[mask > 0] = patch[mask > 0]
    return out


def synthesize_view(image: np.ndarray, points3d: np.ndarray, delta_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """One turned view: (image, its 68 labels)."""
    size = image.shape[0]
    head = np.concatenate([points3d, head_anchors(points3d)])
    turned = turn(head, delta_deg)
    border = border_points(size)
    far = np.full(len(border), min(head[:, 2].min(), turned[:, 2].min()) - 1.0)
    src = np.concatenate([head[:, :2], border])
    dst = np.concatenate([turned[:, :2], border])
    depth = np.concatenate([turned[:, 2], far])
    return warp_mesh(image, src, dst, depth), turned[:68, :2]


def target_deltas(yaw_deg: np.ndarray, views: int, low: float, high: float, rng: np.random.Generator) -> np.ndarray:
    """(N, views) yaw changes: each view turns to |yaw| ~ U(max(low, |yaw|), high), the way the face already faces."""
    current = np.abs(yaw_deg)[:, None]
    target = rng.uniform(np.maximum(low, current), np.maximum(high, current), size=(len(yaw_deg), views))
    sign = np.where(np.abs(yaw_deg) < 5, rng.choice([-1.0, 1.0], size=len(yaw_deg)), np.sign(yaw_deg))[:, None]
    return sign * (target - current)


def synthesize_folder(src: str | os.PathLike, out: str | os.PathLike, bfm_folder: str | os.PathLike, views: int = 2,
                      yaw_range: tuple[float, float] = (40.0, 85.0), seed: int = 0,
                      evaluation: Sequence[str | os.PathLike] = ()) -> dict:
    """Write ``out`` (challenge format, atomically) with ``views`` turned copies of each face of ``src``,
    whose images are first compared with the ``evaluation`` folders' (a near-duplicate stops it)."""
    low, high = yaw_range
    if not 0 <= low <= high <= 90:
        raise FacelmError(f"yaw range must satisfy 0 <= low <= high <= 90, not {low} {high}")
    src, out = Path(src), Path(out)
    faces = open_folder(src)
    if not faces.labelled:
        raise FacelmError("pose synthesis needs labels (annot.pkl)", src)
    near = guard_images([src / name for name in faces.names], evaluation)
    fit = BFM68(bfm_folder).fit(faces.landmarks)
    deltas = target_deltas(fit.yaw_deg, views, low, high, np.random.default_rng(seed))
    names, labels = [], []
    with atomic_dir(out) as tmp:
        for i, name in enumerate(faces.names):
            image = imread_bgr(src / name)
            for k, delta in enumerate(deltas[i]):
                view, points = synthesize_view(image, fit.points3d[i], float(delta))
                view_name = f"{Path(name).stem}_v{k}_yaw{fit.yaw_deg[i] + delta:+03.0f}.jpg"
                if not cv2.imwrite(str(tmp / view_name), view, [cv2.IMWRITE_JPEG_QUALITY, 95]):
                    raise FacelmError("cannot write image", tmp / view_name)
                names.append(view_name)
                labels.append(points)
        save_annot(tmp / ANNOT_NAME, names, np.asarray(labels, np.float32))
        record = {"source": str(src.resolve()), "bfm": str(Path(bfm_folder).resolve()), "views": views,
                  "yaw_range": [low, high], "seed": seed, "n_images": len(names), "convention": "3d_jaw",
                  "fit_residual_px": float(fit.residual.mean()),
                  "source_yaw_abs_mean": float(np.abs(fit.yaw_deg).mean()),
                  "view_yaw_abs_mean": float(np.abs(fit.yaw_deg[:, None] + deltas).mean()), "near_duplicates": near}
        write_json(tmp / RECORD_NAME, record)
    return record


def add_arguments(parser) -> None:
    parser.add_argument("src", help="labelled challenge-format folder")
    parser.add_argument("out", help="output folder for the synthesized views")
    parser.add_argument("--bfm", required=True, help="folder with bfm68_bases.npz and param_mean_std_62d.npz")
    parser.add_argument("--views", type=positive_int, default=2, help="turned views per face (default 2)")
    parser.add_argument("--yaw-min", type=float, default=40.0, help="lowest target |yaw| in degrees (default 40)")
    parser.add_argument("--yaw-max", type=float, default=85.0, help="highest target |yaw| in degrees (default 85)")
    parser.add_argument("--seed", type=int, default=0)
    add_eval_argument(parser)


def main(args) -> int:
    started = time.perf_counter()
    record = synthesize_folder(args.src, args.out, args.bfm, args.views, (args.yaw_min, args.yaw_max), args.seed, args.eval)
    print(f"{args.out}: {record['n_images']} views, |yaw| {record['source_yaw_abs_mean']:.0f} -> "
          f"{record['view_yaw_abs_mean']:.0f} deg on average, fit residual {record['fit_residual_px']:.2f} px; "
          f"{closest_match(record['near_duplicates'])}, {time.perf_counter() - started:.0f} s")
    return 0
