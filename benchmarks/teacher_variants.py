"""The 3DDFA_V2 teacher's label quality on aflw_val, one row per variant: NME/384 x100 by yaw bin.

Variants: the network as published (pixel indices), with pixel centres, with a second pass on
the first pass's ROI, averaged over K shifted/scaled ROIs (``jitter=K``, :data:`facelm.models.tddfa.JITTER`),
and a 3D fit (the 68-point BFM, :meth:`facelm.models.bfm.BFM68.fit`) of the averaged points.
No mirrored ROI: mirroring hurt turned faces before. The best row is the labeller of the photo sets.

    python benchmarks/teacher_variants.py ../shared/models/3ddfa_v2 ../shared/data/aflw_val
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from facelm.challenge.evaluate import scores
from facelm.data.folder import imread_rgb, open_folder
from facelm.models.bfm import BFM68
from facelm.models.teachers import load_teacher

VARIANTS = ("passes=1,pixel_centres=0", "passes=1,pixel_centres=1", "passes=2,pixel_centres=1",
            "passes=1,pixel_centres=1,jitter=5", "passes=1,pixel_centres=1,jitter=13",
            "passes=2,pixel_centres=1,jitter=5", "passes=2,pixel_centres=1,jitter=13")


@torch.no_grad()
def teacher_points(spec: str, images: np.ndarray) -> np.ndarray:
    model, _ = load_teacher(spec)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    return np.concatenate([model(x[i : i + 64])["landmarks"].numpy() for i in range(0, len(x), 64)]) * images.shape[1]


def row(name: str, pred: np.ndarray, gt: np.ndarray, seconds: float) -> dict:
    result = scores(pred, gt)
    bins = [b["nme_384"] for b in result["by_yaw"]]
    offset = (pred - gt).mean(axis=(0, 1))
    print(f"| {name} | {result['nme_384']:.3f} | " + " | ".join(f"{b:.2f}" for b in bins)
          + f" | ({offset[0]:+.2f}, {offset[1]:+.2f}) | {seconds:.1f} |", flush=True)
    return {"variant": name, "nme_384": result["nme_384"], "by_yaw": bins, "offset_px": offset.tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("teacher", help="folder of the 3DDFA_V2 files")
    parser.add_argument("folder", help="labelled challenge-format folder (aflw_val)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    faces = open_folder(args.folder)
    images = np.stack([imread_rgb(faces.path(n)) for n in faces.names])
    print("| teacher variant | NME | 0-30 | 30-60 | 60-90 | mean offset px | s |\n|---|---|---|---|---|---|---|")
    rows, last = [], None
    for options in VARIANTS:
        started = time.perf_counter()
        last = teacher_points(f"3ddfa_v2:{args.teacher},{options}", images)
        rows.append(row(options, last, faces.landmarks, time.perf_counter() - started))
    started = time.perf_counter()
    fitted = BFM68(args.teacher).fit(last).points3d[..., :2]
    rows.append(row(f"{VARIANTS[-1]} + 3D fit", fitted, faces.landmarks, time.perf_counter() - started))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
