"""Faces found and false faces against the detector's score threshold (``Landmarker(min_score=...)``).

    python benchmarks/min_score.py                   # the default detector as Landmarker runs it, 0.3 .. 0.9
    python benchmarks/min_score.py --upright-only    # without the search over quarter turns

Two sets, both from ../shared/data (or $FACELM_SHARED_DATA):

- ``300w_raw_sample``: the 20 labelled faces of its 15 distinct photos (files with the same bytes
  are one photo with one labelled face each). A detection is a labelled face when its box centre
  lies inside a ``.pts`` face box of that photo. The other detections were checked by eye: the
  ones in :data:`NOT_FACES` are no face (a hand, the back of a head, a shirt...), the rest are
  real faces 300-W left unlabelled (small, turned or cut by the edge) and are counted apart.
- aflw_val pasted: each of the 199 aflw_val crops scaled to a random 100-300 px and pasted into
  one of those photos (downscaled to 1280 px on the long side) where no detection lies; found when
  a detection's centre lies inside the pasted face's labelled box.

Detection runs once at the lowest threshold; each row keeps the detections at or above its own.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path

import cv2
import numpy as np

from facelm.data.annot import load_annot
from facelm.data.prepare import read_points
import facelm
from facelm.inference.detectors.registry import DETECTORS
from facelm.landmarks68 import bbox

DATA = Path(os.environ.get("FACELM_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9)
#: detections in 300w_raw_sample that are no face, checked by eye: photo -> box centres (x, y) at full size
NOT_FACES = {"1587030290": [(493, 990), (1179, 393)],  # a hand on a guitar; the back of a head with its ear
             "14424972": [(30, 801)],  # a lamp's reflection in a mirror
             "1295311477": [(1918, 371)],  # a window in a printed banner
             "1051618982": [(803, 864)]}  # a patterned shirt
LONG_SIDE = 1280


def photos(folder: Path) -> list[tuple[str, np.ndarray, list[np.ndarray]]]:
    """(photo id, RGB image, labelled face boxes) of each distinct photo."""
    groups: dict[str, list[Path]] = {}
    for jpg in sorted(folder.glob("*.jpg")):
        groups.setdefault(hashlib.sha256(jpg.read_bytes()).hexdigest(), []).append(jpg)
    out = []
    for files in groups.values():
        image = cv2.cvtColor(cv2.imread(str(files[0])), cv2.COLOR_BGR2RGB)
        out.append((files[0].stem.split("_")[0], image, [bbox(read_points(f.with_suffix(".pts"))) for f in files]))
    return out


def inside(box: np.ndarray, regions: list[np.ndarray]) -> bool:
    """Whether a detection box's centre lies inside any of the x0, y0, x1, y1 regions."""
    centre = (box[:2] + box[2:]) / 2
    return any((centre >= r[:2]).all() and (centre <= r[2:]).all() for r in regions)


def classify_300w(detector, folder: Path) -> tuple[list[float], list[float], list[float], int]:
    """Best score of each labelled face (0 when missed), scores of unlabelled real faces and of no-faces."""
    labelled, unlabelled, false = [], [], []
    for photo_id, image, boxes in photos(folder):
        found = detector.detect_batch([image])[0]
        best = {i: 0.0 for i in range(len(boxes))}
        for box, score in zip(found.boxes, found.scores):
            hits = [i for i, b in enumerate(boxes) if inside(box, [b])]
            if hits:
                best[hits[0]] = max(best[hits[0]], float(score))
            elif any(np.linalg.norm((box[:2] + box[2:]) / 2 - c) < 0.5 * (box[2] - box[0]) for c in NOT_FACES.get(photo_id, [])):
                false.append(float(score))
            else:
                unlabelled.append(float(score))
        labelled += list(best.values())
    return labelled, unlabelled, false, len(labelled)


def pasted_scores(detector, folder: Path, backgrounds: list[np.ndarray], seed: int = 0) -> list[float]:
    """Best score of each aflw_val face pasted into a background photo where nothing was detected (0 when missed)."""
    rng = np.random.default_rng(seed)
    names, landmarks = load_annot(folder / "annot.pkl")
    scores = []
    for i, (name, points) in enumerate(zip(names, landmarks)):
        background = backgrounds[i % len(backgrounds)]
        taken = detector.detect_batch([background])[0].boxes
        side = int(rng.integers(100, 301))
        crop = cv2.resize(cv2.cvtColor(cv2.imread(str(folder / name)), cv2.COLOR_BGR2RGB), (side, side), interpolation=cv2.INTER_AREA)
        for _ in range(100):
            x, y = rng.integers(0, background.shape[1] - side), rng.integers(0, background.shape[0] - side)
            spot = np.array([x, y, x + side, y + side], np.float32)
            if not len(taken) or not ((taken[:, :2] < spot[2:]) & (taken[:, 2:] > spot[:2])).all(1).any():
                break
        image = background.copy()
        image[y : y + side, x : x + side] = crop
        face = bbox(np.asarray(points) * side / 384) + np.array([x, y, x, y])
        found = detector.detect_batch([image])[0]
        hits = [float(s) for b, s in zip(found.boxes, found.scores) if inside(b, [face])]
        scores.append(max(hits, default=0.0))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", default="yunet", choices=sorted(DETECTORS))
    parser.add_argument("--upright-only", action="store_true", help="Landmarker(any_rotation=False): one detection per image")
    args = parser.parse_args()
    detector = facelm.Landmarker(detector=args.detector, min_score=min(THRESHOLDS), any_rotation=not args.upright_only).detector
    labelled, unlabelled, false, total = classify_300w(detector, DATA / "300w_raw_sample")
    backgrounds = []
    for _, image, _ in photos(DATA / "300w_raw_sample"):
        scale = LONG_SIDE / max(image.shape[:2])
        backgrounds.append(cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
    pasted = pasted_scores(detector, DATA / "aflw_val", backgrounds)
    print(f"| min_score | 300-W labelled faces found (of {total}) | unlabelled real faces kept (of {len(unlabelled)}) "
          f"| false faces (of {len(false)}: {', '.join(f'{s:.2f}' for s in sorted(false))}) "
          f"| aflw_val pasted found (of {len(pasted)}) |")
    print("|---|---|---|---|---|")
    for t in THRESHOLDS:
        print(f"| {t:.2f} | {sum(s >= t for s in labelled)} | {sum(s >= t for s in unlabelled)} "
              f"| {sum(s >= t for s in false)} | {sum(s >= t for s in pasted)} |")
    print(f"lowest labelled 300-W face: {min(labelled):.2f}; unlabelled real faces: "
          f"{', '.join(f'{s:.2f}' for s in sorted(unlabelled))}")


if __name__ == "__main__":
    main()
