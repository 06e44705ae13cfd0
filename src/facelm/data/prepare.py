"""Convert a raw landmark dataset to the challenge format (384x384 JPEG crops + ``annot.pkl``).

Two source layouts are recognised:

* **FaceSynthetics release**: ``NNNNNN.png`` (512x512) + ``NNNNNN_ldmks.txt`` (70 lines
  ``x y``: the 68 iBUG points, then two pupils; the first 68 are kept). Coordinates are used
  as they are (continuous pixel coordinates).
* **300-W style**: ``NAME.jpg|png`` + ``NAME.pts`` (68 points, optionally wrapped in the
  ``version: 1 / n_points: 68 / { ... }`` header). 300-W coordinates are 1-based pixel
  indices; facelm's convention puts pixel ``i`` (0-based) over ``[i, i+1)`` with its centre at
  ``i + 0.5``, so a 1-based value ``p`` becomes ``p - 0.5``.

The crop is a similarity transform of the source (uniform scale + translation, no rotation,
no warping) that puts the 68-point box (size ``sqrt(w*h)``) at ``CROP_BOX_FRACTION`` of the
crop side with its centre at ``CROP_CENTRE`` -- the framing measured on the challenge's own
crops. Files are processed by a process pool in chunks (streaming: only landmarks stay in
memory), into a temporary folder that replaces the output folder only when complete.
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from tqdm import tqdm

from facelm.data.annot import save_annot
from facelm.data.folder import imread_bgr
from facelm.data.limits import positive_int
from facelm.atomic import atomic_dir, write_json
from facelm.data.near_duplicates import add_eval_argument, closest_match, guard_images
from facelm.errors import FacelmError
from facelm.landmarks68 import CHALLENGE_SIZE, CROP_BOX_FRACTION, CROP_CENTRE, box_centre, box_size

JPEG_QUALITY = 95
#: the built folder's record: its source, size and the closest evaluation image
RECORD_NAME = "prepare.json"


def read_points(path: Path) -> np.ndarray:
    """68 points of a ``_ldmks.txt`` (first 68 of 70) or a ``.pts`` file, in facelm's convention."""
    try:
        lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as err:
        raise FacelmError(f"cannot read landmarks ({type(err).__name__})", path) from None
    is_pts = path.suffix == ".pts"
    if is_pts and lines and lines[0].startswith("version"):
        try:
            lines = lines[lines.index("{") + 1 : lines.index("}")]
        except ValueError:
            raise FacelmError("malformed .pts header (no { ... } block)", path) from None
    try:
        points = np.array([[float(v) for v in line.split()[:2]] for line in lines], np.float64)
    except ValueError:
        raise FacelmError("a landmark line is not two numbers", path) from None
    needed = 68 if is_pts else 70
    if points.ndim != 2 or points.shape != (needed, 2):
        raise FacelmError(f"expected {needed} points of 'x y', found {len(lines)} lines", path)
    if not np.isfinite(points).all():
        raise FacelmError("non-finite landmark value", path)
    return points[:68] - (0.5 if is_pts else 0.0)


def find_pairs(raw_dir: Path) -> list[tuple[Path, Path, str]]:
    """(image, landmarks, output name) of every face in ``raw_dir``."""
    if not raw_dir.is_dir():
        raise FacelmError("not a folder", raw_dir)
    pairs = []
    synthetic = sorted(raw_dir.glob("*_ldmks.txt"))
    if synthetic:
        for ldmks in synthetic:
            stem = ldmks.name[: -len("_ldmks.txt")]
            image = raw_dir / f"{stem}.png"
            if not image.exists():
                raise FacelmError(f"landmarks without image {image.name}", ldmks)
            pairs.append((image, ldmks, f"{stem}.jpg"))
        return pairs
    for pts in sorted(raw_dir.glob("*.pts")):
        image = next((p for p in (pts.with_suffix(s) for s in (".jpg", ".png", ".jpeg")) if p.exists()), None)
        if image is None:
            raise FacelmError("landmarks without an image (.jpg/.png)", pts)
        pairs.append((image, pts, f"{pts.stem}.jpg"))
    if not pairs:
        raise FacelmError("no FaceSynthetics (*_ldmks.txt) or 300-W (*.pts) landmark files found", raw_dir)
    return pairs


def crop_transform(points: np.ndarray, size: int = CHALLENGE_SIZE) -> np.ndarray:
    """2x3 similarity (scale + translation) framing ``points`` like a challenge crop of ``size``."""
    scale = CROP_BOX_FRACTION * size / max(float(box_size(points)), 1e-6)
    centre = box_centre(points)
    tx, ty = np.array(CROP_CENTRE) * size - scale * centre
    return np.array([[scale, 0.0, tx], [0.0, scale, ty]])


def warp_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def _pixel_matrix(matrix: np.ndarray) -> np.ndarray:
    """cv2.warpAffine maps pixel centres (integer indices); convert from the continuous convention."""
    m = matrix.copy()
    m[:, 2] += m[:, :2].sum(axis=1) * 0.5 - 0.5
    return m


def convert_one(task: tuple[Path, Path, Path, int]) -> tuple[str, np.ndarray]:
    image_path, points_path, out_path, size = task
    points = read_points(points_path)
    image = imread_bgr(image_path)
    matrix = crop_transform(points, size)
    flags = cv2.INTER_AREA if matrix[0, 0] < 1 else cv2.INTER_LINEAR
    crop = cv2.warpAffine(image, _pixel_matrix(matrix), (size, size), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    ok, encoded = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    out_path.write_bytes(encoded.tobytes())  # inside prepare_folder's temporary folder
    return out_path.name, warp_points(points, matrix).astype(np.float32)


def _init_worker() -> None:
    cv2.setNumThreads(1)


def prepare_folder(raw_dir: str | os.PathLike, out_dir: str | os.PathLike, workers: int | None = None,
                   size: int = CHALLENGE_SIZE, limit: int | None = None, evaluation: Sequence[str | os.PathLike] = ()) -> dict:
    """Convert ``raw_dir`` into ``out_dir``; returns its record (``prepare.json``: source, ``n_faces``,
    size, the closest evaluation image).

    The folder is built beside ``out_dir`` and renamed into place when complete
    (:func:`facelm.atomic.atomic_dir`), so a failed or killed run leaves the previous folder or none.
    With ``evaluation`` folders, the crops are compared with their images first and a near-duplicate
    stops the build (:mod:`facelm.data.near_duplicates`); ``prepare.json`` records the closest match.
    """
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    if int(size) < 1 or (limit is not None and limit < 1):
        raise FacelmError(f"size and limit must be positive, got size {size}, limit {limit}")
    pairs = find_pairs(raw_dir)[:limit]
    workers = workers or min(4, os.cpu_count() or 1)
    names = []
    landmarks = np.empty((len(pairs), 68, 2), np.float32)  # 544 bytes a face; the images are never held
    with atomic_dir(out_dir) as tmp:
        tasks = ((image, points, tmp / name, size) for image, points, name in pairs)  # fed to the pool lazily
        pool = multiprocessing.get_context("spawn").Pool(workers, _init_worker) if workers > 1 else None
        try:
            results = pool.imap(convert_one, tasks, chunksize=16) if pool else map(convert_one, tasks)
            for i, (name, points) in enumerate(tqdm(results, total=len(pairs), desc=f"prepare {raw_dir.name}",
                                                    unit="img", disable=None)):
                names.append(name)
                landmarks[i] = points
        finally:
            if pool:
                pool.terminate()
        save_annot(tmp / "annot.pkl", names, landmarks)
        record = {"source": str(raw_dir.resolve()), "n_faces": len(names), "size": int(size),
                  "near_duplicates": guard_images([tmp / name for name in names], evaluation)}
        write_json(tmp / RECORD_NAME, record)
    return record


def add_arguments(parser) -> None:
    parser.add_argument("raw_dir", help="FaceSynthetics release folder or 300-W style folder (.pts)")
    parser.add_argument("out_dir", help="challenge-format output folder")
    parser.add_argument("--workers", type=int, help="processes (default: up to 4)")
    parser.add_argument("--size", type=positive_int, default=CHALLENGE_SIZE, help="crop side (default 384)")
    parser.add_argument("--limit", type=positive_int, help="convert only the first N faces")
    add_eval_argument(parser)


def main(args) -> int:
    record = prepare_folder(args.raw_dir, args.out_dir, args.workers, args.size, args.limit, args.eval)
    print(f"{args.out_dir}: {record['n_faces']} crops {args.size}x{args.size} + annot.pkl; "
          f"{closest_match(record['near_duplicates'])}")
    return 0
