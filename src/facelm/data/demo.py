"""Self-made demo data in the challenge layout, so a clone without any data runs end to end.

Each face is *drawn* (OpenCV polygons, no downloaded or copied pixels) from a 68-point shape:
the mean shape under a random similarity, a yaw-like squash of one side, a random
expression and per-point jitter. The labels are exactly the points the drawing used, so a
CNN can and must learn to localise them. Backgrounds, skin colour, lighting, noise and
blur vary so the task is not trivial.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from facelm.data.annot import save_annot
from facelm.atomic import atomic_dir
from facelm.data.limits import positive_int
from facelm.landmarks68 import CHALLENGE_SIZE, GROUPS, box_centre, box_size, mean_shape

#: split folder -> labelled?
SPLITS = {"synthetics_train": True, "aflw_val": True, "aflw_test": False}


def random_shape(rng: np.random.Generator, size: int = CHALLENGE_SIZE) -> np.ndarray:
    """One plausible 68-point shape in a ``size`` crop: mean shape, expression, yaw, similarity."""
    pts = mean_shape(size).astype(np.float64)
    centre = pts.mean(axis=0)
    rel = pts - centre
    # expression: open the mouth (inner + lower lip down), raise the brows
    mouth_open = rng.uniform(0, 0.06) * size
    rel[[65, 66, 67, 55, 56, 57, 58, 59], 1] += mouth_open * np.array([1, 1, 1, 0.6, 1, 1, 1, 0.6])
    rel[17:27, 1] -= rng.uniform(0, 0.02) * size
    # yaw: squash the side the face turns away from and shift the nose/mouth towards it
    yaw = rng.uniform(-0.35, 0.35)
    side = np.sign(rel[:, 0])
    squash = np.where(side * yaw > 0, 1 - abs(yaw), 1.0)
    rel[:, 0] = rel[:, 0] * squash
    rel[27:68, 0] += yaw * 0.08 * size
    # similarity: scale, rotation, shift
    angle = np.deg2rad(rng.uniform(-20, 20))
    scale = rng.uniform(0.85, 1.15)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    shift = rng.uniform(-0.06, 0.06, 2) * size
    pts = (rel @ rot.T) * scale + centre + shift
    pts += rng.normal(0, 0.004 * size, pts.shape)
    return pts.astype(np.float32)


def _colour(rng: np.random.Generator, low: int = 0, high: int = 256) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(low, high, 3))


def draw_face(pts: np.ndarray, rng: np.random.Generator, size: int = CHALLENGE_SIZE) -> np.ndarray:
    """Draw a face consistent with ``pts`` (68, 2); returns an RGB uint8 image."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = np.array(_colour(rng), np.float32)
    tint = np.array(_colour(rng), np.float32)
    mix = (xx * rng.uniform(-1, 1) + yy * rng.uniform(-1, 1))[..., None]
    image = np.clip(base + (tint - base) * mix, 0, 255).astype(np.uint8)
    for _ in range(rng.integers(3, 8)):  # background clutter
        cv2.circle(image, tuple(int(v) for v in rng.integers(0, size, 2)), int(rng.integers(10, 80)),
                   _colour(rng), -1, cv2.LINE_AA)

    shift = 16  # fixed-point drawing: sub-pixel accurate polygons
    def poly(idx, closed=True):
        return (pts[idx] * (1 << shift)).astype(np.int32).reshape(-1, 1, 2)

    jaw = pts[GROUPS["jaw"]]
    brow_top = pts[17:27][::-1] - np.array([0, 0.12 * size])
    skin_outline = np.concatenate([jaw, brow_top])
    skin = tuple(int(c) for c in np.array([rng.uniform(120, 240), rng.uniform(80, 200), rng.uniform(60, 180)]))
    cv2.fillPoly(image, [(skin_outline * (1 << shift)).astype(np.int32).reshape(-1, 1, 2)], skin,
                 cv2.LINE_AA, shift)
    hair = _colour(rng, 0, 120)
    cv2.fillPoly(image, [(np.concatenate([brow_top, brow_top[:1] - [0, 0.02 * size]]) * (1 << shift)
                          ).astype(np.int32).reshape(-1, 1, 2)], hair, cv2.LINE_AA, shift)
    dark = tuple(int(c * 0.45) for c in skin)
    cv2.polylines(image, [poly(GROUPS["jaw"])], False, dark, 2, cv2.LINE_AA, shift)
    brow = _colour(rng, 0, 90)
    for name in ("right_brow", "left_brow"):
        cv2.polylines(image, [poly(GROUPS[name])], False, brow, max(2, size // 90), cv2.LINE_AA, shift)
    iris = _colour(rng, 20, 160)
    for name in ("right_eye", "left_eye"):
        cv2.fillPoly(image, [poly(GROUPS[name])], (245, 245, 240), cv2.LINE_AA, shift)
        centre = pts[GROUPS[name]].mean(axis=0)
        radius = 0.28 * np.linalg.norm(pts[GROUPS[name][0]] - pts[GROUPS[name][3]])
        cv2.circle(image, tuple((centre * (1 << shift)).astype(int)), int(radius * (1 << shift)), iris, -1,
                   cv2.LINE_AA, shift)
        cv2.polylines(image, [poly(GROUPS[name])], True, (30, 25, 25), 1, cv2.LINE_AA, shift)
    cv2.polylines(image, [poly(GROUPS["nose_bridge"] + GROUPS["nostrils"][2:3])], False, dark, 2, cv2.LINE_AA, shift)
    cv2.polylines(image, [poly(GROUPS["nostrils"])], False, dark, 2, cv2.LINE_AA, shift)
    lips = tuple(int(c) for c in np.array([rng.uniform(140, 230), rng.uniform(40, 110), rng.uniform(50, 120)]))
    cv2.fillPoly(image, [poly(GROUPS["outer_lip"])], lips, cv2.LINE_AA, shift)
    cv2.fillPoly(image, [poly(GROUPS["inner_lip"])], (60, 20, 30), cv2.LINE_AA, shift)

    light = 1 + rng.uniform(-0.35, 0.35) * (xx - 0.5) + rng.uniform(-0.35, 0.35) * (yy - 0.5)
    image = image.astype(np.float32) * light[..., None] + rng.normal(0, rng.uniform(2, 8), image.shape)
    image = np.clip(image, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 1.5))
    return image


def _write_split(folder: Path, n: int, labelled: bool, rng: np.random.Generator, size: int) -> None:
    names, shapes = [], []
    for i in range(n):
        pts = random_shape(rng, size)
        image = draw_face(pts, rng, size)
        name = f"{i:06d}.jpg"
        if not cv2.imwrite(str(folder / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92]):
            raise OSError(f"cannot write {folder / name}")
        names.append(name)
        shapes.append(pts)
    if labelled:
        save_annot(folder / "annot.pkl", names, np.stack(shapes))


#: the record each demo split carries (facelm.challenge.provenance reads it)
DEMO_RECORD = "demo.json"


def make_demo_data(out_dir: str | os.PathLike, n_train: int = 384, n_val: int = 48, n_test: int = 48,
                   seed: int = 0, size: int = CHALLENGE_SIZE) -> Path:
    """Write ``synthetics_train/``, ``aflw_val/`` (labelled) and ``aflw_test/`` (unlabelled) under ``out_dir``.

    Deterministic for a seed; each split folder appears atomically (complete or not at all).
    """
    out = Path(out_dir)
    counts = {"synthetics_train": n_train, "aflw_val": n_val, "aflw_test": n_test}
    for index, (split, labelled) in enumerate(SPLITS.items()):
        rng = np.random.default_rng([seed, index])
        with atomic_dir(out / split) as tmp:
            _write_split(tmp, counts[split], labelled, rng, size)
            # what made the folder, read by the model cards' provenance (its name is a challenge set's)
            (tmp / DEMO_RECORD).write_text(json.dumps({"made_by": "facelm make-demo-data", "seed": seed, "faces": counts[split]}))
    return out


#: FaceSynthetics release framing: 512 px images, the 68-point box about 167 px, centred near (257, 302).
RELEASE_SIZE, RELEASE_BOX, RELEASE_CENTRE = 512, 167.0, (257.0, 302.0)


def _release_face(task: tuple[Path, int, int]) -> None:
    """Draw face ``index`` of a seeded release and write ``NNNNNN.png`` + ``NNNNNN_ldmks.txt`` (68 points, 2 pupils)."""
    out, seed, index = task
    rng = np.random.default_rng([seed, 3, index])
    shape = random_shape(rng)
    reference = mean_shape(CHALLENGE_SIZE)
    pts = (shape - box_centre(reference)) * (RELEASE_BOX / box_size(reference)) + np.array(RELEASE_CENTRE)
    image = draw_face(pts.astype(np.float32), rng, RELEASE_SIZE)
    pupils = np.stack([pts[GROUPS["right_eye"]].mean(0), pts[GROUPS["left_eye"]].mean(0)])
    stem = out / f"{index:06d}"
    if not cv2.imwrite(f"{stem}.png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {stem}.png")
    Path(f"{stem}_ldmks.txt").write_text("".join(f"{x:.6f} {y:.6f}\n" for x, y in np.concatenate([pts, pupils])))


def _init_worker() -> None:
    cv2.setNumThreads(1)


def make_release_data(out_dir: str | os.PathLike, n: int, seed: int = 0, workers: int | None = None) -> Path:
    """``n`` drawn faces in the FaceSynthetics release format (input of ``facelm prepare``), written as they
    are drawn (nothing holds more than one image per worker); the folder appears atomically."""
    out = Path(out_dir)
    workers = workers or min(2, os.cpu_count() or 1)
    with atomic_dir(out) as tmp:
        tasks = ((tmp, seed, i) for i in range(n))
        pool = multiprocessing.get_context("spawn").Pool(workers, _init_worker) if workers > 1 else None
        try:
            done = pool.imap_unordered(_release_face, tasks, chunksize=32) if pool else map(_release_face, tasks)
            for _ in tqdm(done, total=n, desc=f"draw {out.name}", unit="img", disable=None):
                pass
        finally:
            if pool:
                pool.terminate()
    return out


def add_arguments(parser) -> None:
    parser.add_argument("out_dir", help="where to write synthetics_train/, aflw_val/, aflw_test/")
    parser.add_argument("--release", type=positive_int, metavar="N",
                        help="instead: write N faces in the raw FaceSynthetics release format into OUT_DIR")
    parser.add_argument("--workers", type=int, help="drawing processes for --release (default: up to 2)")
    parser.add_argument("--n-train", type=positive_int, default=384)
    parser.add_argument("--n-val", type=positive_int, default=48)
    parser.add_argument("--n-test", type=positive_int, default=48)
    parser.add_argument("--seed", type=int, default=0)


def main(args) -> int:
    if args.release is not None:
        make_release_data(args.out_dir, args.release, args.seed, args.workers)
        print(f"demo data: {args.release} faces in the FaceSynthetics release format in {args.out_dir}")
        return 0
    out = make_demo_data(args.out_dir, args.n_train, args.n_val, args.n_test, args.seed)
    print(f"demo data: {args.n_train} train, {args.n_val} val, {args.n_test} test faces in {out}")
    return 0
