"""The guard against training on the measuring stick: face crops compared with the evaluation sets.

Two stages, because a copy of an evaluation photo may come back flipped, rescaled, re-cropped
and reframed (a photo set frames each face from the teacher's points, never exactly as the
evaluation crop was framed), while a different person in a similar pose must not match:

1. *Shortlist.* Every image becomes a fingerprint: the face region of a challenge crop (the
   68-point box at ``CROP_BOX_FRACTION`` of the side around ``CROP_CENTRE``), grey, blurred, at
   ``GRID`` x ``GRID`` cells, zero-mean and unit-norm. An evaluation face is kept as templates
   (itself and mirrored, shifted by a cell each way, rescaled by 8 %); each candidate keeps the
   ``SHORTLIST`` evaluation images whose templates correlate best with it.
2. *Verify.* ORB keypoints of the candidate are matched with each shortlisted image and its mirror
   (Lowe's ratio test), and a similarity transform is fitted by RANSAC: the same photo, however
   cropped, flipped or rescaled, leaves hundreds of matches consistent with one transform; two
   photos of different people leave a few dozen at most.

On 20 aflw_val faces hidden in scenes (flipped, 60-130 % scale, cut by up to 15 %) and framed by
``facelm photo-set``, the fewest inliers were 153; on 609 other faces (300-W, KDEF) against aflw_val
the most were 27. :data:`MIN_INLIERS` sits between.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, NamedTuple, Sequence

import cv2
import numpy as np

from facelm.data.folder import imread_rgb, list_images
from facelm.errors import FacelmError
from facelm.landmarks68 import CROP_BOX_FRACTION, CROP_CENTRE

GRID = 16
SHORTLIST = 3
MIN_INLIERS = 60
ORB_FEATURES = 500
RATIO = 0.8
RANSAC_PX = 4.0
#: (shift x, shift y in cells, scale) of the evaluation templates
TEMPLATE_MOVES = tuple((dx, dy, s) for dx in (-1, 0, 1) for dy in (-1, 0, 1) for s in (0.92, 1.0, 1.08))


def _grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


def _blurred(grey: np.ndarray) -> np.ndarray:
    """Float32, blurred to about half a fingerprint cell (a shift within a cell barely changes it)."""
    sigma = max(0.5, 0.5 * CROP_BOX_FRACTION * grey.shape[1] / GRID)
    return cv2.GaussianBlur(grey.astype(np.float32), (0, 0), sigmaX=sigma)


def _region(blurred: np.ndarray, dx: float = 0.0, dy: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """The face region of a blurred challenge-framed crop, moved by (dx, dy) cells and scaled, as GRID x GRID floats."""
    h, w = blurred.shape
    side = CROP_BOX_FRACTION * scale
    cell = CROP_BOX_FRACTION / GRID
    x0, y0 = CROP_CENTRE[0] - side / 2 + dx * cell, CROP_CENTRE[1] - side / 2 + dy * cell
    kx, ky = GRID / (side * w), GRID / (side * h)
    warp = np.array([[kx, 0, -x0 * w * kx], [0, ky, -y0 * h * ky]], np.float32)
    return cv2.warpAffine(blurred, warp, (GRID, GRID), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _normalise(regions: np.ndarray) -> np.ndarray:
    flat = regions.reshape(len(regions), -1).astype(np.float64)
    flat -= flat.mean(1, keepdims=True)
    return (flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-9)).astype(np.float32)


def fingerprint(grey: np.ndarray) -> np.ndarray:
    """(GRID*GRID,) fingerprint of one challenge-framed grey crop."""
    return _normalise(_region(_blurred(grey))[None])[0]


def templates(grey: np.ndarray) -> np.ndarray:
    """(T, GRID*GRID) fingerprints of one evaluation crop under every move of :data:`TEMPLATE_MOVES`, plain and mirrored."""
    blurred = _blurred(grey)
    views = (blurred, np.ascontiguousarray(blurred[:, ::-1]))
    return _normalise(np.stack([_region(view, *move) for view in views for move in TEMPLATE_MOVES]))


class Keypoints(NamedTuple):
    points: np.ndarray  # (K, 2) float32
    descriptors: np.ndarray | None  # (K, 32) uint8

    @classmethod
    def of(cls, grey: np.ndarray) -> "Keypoints":
        found, descriptors = cv2.ORB_create(ORB_FEATURES).detectAndCompute(grey, None)
        return cls(np.float32([k.pt for k in found]).reshape(-1, 2), descriptors)


def inliers(a: Keypoints, b: Keypoints) -> int:
    """Matches between two images consistent with one similarity transform (RANSAC)."""
    if a.descriptors is None or b.descriptors is None or len(a.points) < 4 or len(b.points) < 4:
        return 0
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(a.descriptors, b.descriptors, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < RATIO * p[1].distance]
    if len(good) < 4:
        return len(good)
    src = a.points[[g.queryIdx for g in good]]
    dst = b.points[[g.trainIdx for g in good]]
    _, mask = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX)
    return 0 if mask is None else int(mask.sum())


class Match(NamedTuple):
    inliers: int
    evaluation_image: Path


class EvaluationFaces:
    """Every evaluation image's templates and keypoints (plain and mirrored)."""

    def __init__(self, paths: Sequence[Path], greys: Sequence[np.ndarray]):
        if not paths:
            raise FacelmError("no evaluation images to compare with")
        self.paths = list(paths)
        blocks = [templates(grey) for grey in greys]
        self.templates = np.concatenate(blocks)
        self.owner = np.repeat(np.arange(len(blocks)), [len(b) for b in blocks])
        self.keypoints = [(Keypoints.of(grey), Keypoints.of(np.ascontiguousarray(grey[:, ::-1]))) for grey in greys]

    @classmethod
    def of_folders(cls, folders: Iterable[str | os.PathLike]) -> "EvaluationFaces":
        paths = [Path(folder) / name for folder in folders for name in list_images(folder)]
        return cls(paths, [_grey(imread_rgb(path)) for path in paths])

    def shortlist(self, grey: np.ndarray) -> list[int]:
        """The :data:`SHORTLIST` evaluation images whose templates correlate best with a crop."""
        corr = self.templates @ fingerprint(grey)
        best = np.full(len(self.paths), -np.inf, np.float32)
        np.maximum.at(best, self.owner, corr)
        return list(np.argsort(-best)[:SHORTLIST])

    def closest(self, grey: np.ndarray) -> Match:
        """The shortlisted evaluation image sharing the most consistent keypoint matches with a crop."""
        mine = Keypoints.of(grey)
        scored = [Match(max(inliers(mine, kp) for kp in self.keypoints[i]), self.paths[i]) for i in self.shortlist(grey)]
        return max(scored, key=lambda m: m.inliers)


def refuse_near_duplicates(names: Sequence[str | os.PathLike], greys: Iterable[np.ndarray], evaluation: EvaluationFaces,
                           min_inliers: int = MIN_INLIERS) -> dict:
    """Raise a one-line FacelmError naming both files at the first crop that matches an evaluation
    image with ``min_inliers`` or more; else return the closest match found (for the set's record)."""
    closest, closest_name = Match(-1, Path()), None
    for name, grey in zip(names, greys):
        match = evaluation.closest(grey)
        if match.inliers >= min_inliers:
            raise FacelmError(f"near-duplicate of evaluation image {match.evaluation_image} ({match.inliers} matching "
                              f"keypoints >= {min_inliers}): a training set may not hold the measuring stick", name)
        if match.inliers > closest.inliers:
            closest, closest_name = match, name
    return {"closest_inliers": closest.inliers, "closest_image": str(closest_name),
            "closest_evaluation_image": str(closest.evaluation_image), "min_inliers": min_inliers}


def guard_images(paths: Sequence[str | os.PathLike], evaluation: Sequence[str | os.PathLike]) -> dict | None:
    """:func:`refuse_near_duplicates` for image files (a built set's crops, or the source images it
    links) against the evaluation folders; None, recorded as "not checked", when none is named."""
    if not evaluation:
        return None
    faces = EvaluationFaces.of_folders(evaluation)
    record = refuse_near_duplicates(paths, (_grey(imread_rgb(path)) for path in paths), faces)
    return {**record, "evaluation_sets": [str(Path(e).resolve()) for e in evaluation]}


def closest_match(record: dict | None) -> str:
    """One phrase for a build's summary line: the closest evaluation image, or that none was compared."""
    if record is None:
        return "not compared with any evaluation set (--eval)"
    return (f"closest evaluation image {record['closest_evaluation_image']} ({record['closest_inliers']} matching "
            f"keypoints, {record['closest_image']})")


def add_eval_argument(parser, required: bool = False) -> None:
    """The ``--eval DIR`` option of every verb that builds a training set."""
    parser.add_argument("--eval", action="append", default=[], metavar="DIR", required=required,
                        help="an evaluation folder (repeatable: val, test, ...); a crop that is a near-duplicate "
                             "of one of its images (cropped, flipped or rescaled) stops the build")
