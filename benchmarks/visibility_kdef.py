"""Per-point visibility checked on KDEF's studio photos, whose file names give the head's view.

    python benchmarks/visibility_kdef.py ../shared/data/kdef_photos [--model fast] [--per-view 200]

Runs ``facelm.Landmarker`` on whole photos (default detector) and tabulates ``Face.visible`` per view
(S straight, HL/HR half profile about 45 degrees, FL/FR full profile about 90). A point's side comes
from the 3D mean face (x of the frontal face, 3 mm around the midline counting as the midline); the
far side is the one the predicted yaw turns towards. Printed per view: faces, the median yaw, how often the
yaw's sign is the one most faces of that view have (left and right views must differ), the faces
framed upside down or sideways (|roll| over 45 degrees: the photos are upright), the mean count
of hidden points, and the share hidden of far-side points by region and of near-side and midline
points (the head cannot hide those: each one flagged is an error).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

import facelm
from facelm.data.head3d import mean_face
from facelm.landmarks68 import REGIONS

VIEWS = ("S", "HL", "HR", "FL", "FR")
MIDLINE_MM = 3.0


def view_of(name: str) -> str:
    stem = Path(name).stem.upper()
    return stem[-2:] if stem[-2:] in VIEWS else stem[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photos", type=Path)
    parser.add_argument("--model", default="fast")
    parser.add_argument("--per-view", type=int, default=200, help="photos per view, first by name")
    args = parser.parse_args()
    names = sorted(p.name for p in args.photos.glob("*.jpg"))
    chosen = {v: [n for n in names if view_of(n) == v][: args.per_view] for v in VIEWS}
    landmarker = facelm.Landmarker(model=args.model, threads=1)
    side = np.sign(np.where(np.abs(mean_face()[:, 0]) < MIDLINE_MM, 0.0, mean_face()[:, 0]))  # -1 image left, +1 right
    print(f"model {args.model}; points per side: {int((side < 0).sum())} left, {int((side > 0).sum())} right, "
          f"{int((side == 0).sum())} on the midline")
    print("view | faces | median yaw | yaw sign as the view's majority | |roll| > 45 | hidden per face | far side hidden: "
          + " / ".join(REGIONS) + " | near side + midline hidden")
    for view, files in chosen.items():
        faces = [f for n in files for f in landmarker(cv2.imread(str(args.photos / n)))[:1]]
        if not faces:
            continue
        yaws = np.array([f.pose[0] for f in faces])
        visible = np.stack([f.visible for f in faces])
        majority = np.sign(np.median(yaws)) or 1.0
        far = np.sign(yaws)[:, None] * side[None] > 0
        regions = []
        for index in REGIONS.values():
            cells = far[:, index]
            regions.append(f"{(~visible[:, index])[cells].mean():.2f}" if cells.any() else "-")
        near_hidden = (~visible)[~far].mean()
        sideways = int((np.abs([f.pose[2] for f in faces]) > 45).sum())
        print(f"{view} | {len(faces)} | {np.median(yaws):+.1f} | {(np.sign(yaws) == majority).mean():.3f} | {sideways} | "
              f"{(~visible).sum(1).mean():.1f} | {' / '.join(regions)} | {near_hidden:.4f}")


if __name__ == "__main__":
    main()
