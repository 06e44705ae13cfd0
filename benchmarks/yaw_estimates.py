"""How well two yaw estimates bin faces: solvePnP on a mean face (facelm.data.pose, the bins of
the accuracy log) and a fit of the 68-point BFM (facelm.models.bfm).

1. Faces drawn from the BFM (identity and expression from the 300W-LP statistics) with a known
   yaw in -89..89 degrees, pitch +-20, roll +-15, 1 px label noise: error of each estimate.
2. aflw_val (BFM keypoints) and 300w_train (hand-placed): how the two estimates bin the faces;
   on 300w_train also against the yaw of a BFM fit of the 3DDFA_V2 teacher's points when a
   relabelled copy is given (``--relabelled data/300w_3ddfa``).

    python benchmarks/yaw_estimates.py --face-model ../shared/models/3ddfa_v2 --data ../shared/data
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from facelm.data.annot import load_annot
from facelm.data.pose import pose_from_landmarks, yaw_bin
from facelm.models.bfm import BFM68


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return rz @ rx @ ry


def posed_faces(bfm: BFM68, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(N, 68, 2) pixel labels of BFM faces in a 384 crop and their true |yaw| in degrees."""
    rng = np.random.default_rng(seed)
    points = bfm.shape(bfm.param_mean[12:] + rng.normal(size=(n, 50)) * bfm.param_std[12:])
    yaw = np.radians(rng.uniform(-89, 89, n))
    pitch, roll = np.radians(rng.uniform(-20, 20, n)), np.radians(rng.uniform(-15, 15, n))
    labels = np.zeros((n, 68, 2))
    for i in range(n):
        turned = (rotation(yaw[i], pitch[i], roll[i]) @ (points[i] - points[i].mean(0)).T).T
        flat = turned[:, :2] * np.array([1.0, -1.0])  # the BFM's y up -> image y down
        labels[i] = flat / np.ptp(flat[:, 1]) * 200 + 192 + rng.normal(0, 1.0, (68, 2))
    return labels, np.degrees(np.abs(yaw))


def pnp_yaw(labels: np.ndarray) -> np.ndarray:
    return np.degrees(np.abs(pose_from_landmarks(labels, 384)[:, 0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--face-model", default="../shared/models/3ddfa_v2")
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--relabelled", help="300w_train relabelled by the teacher (facelm relabel)")
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    bfm = BFM68(args.face_model)

    labels, true = posed_faces(bfm, args.n)
    true_bin = yaw_bin(true)
    print(f"BFM faces with a known yaw (n={args.n}): |yaw error| mean / median, by true bin; bin agreement")
    for name, est in (("solvePnP", pnp_yaw(labels)), ("BFM fit", np.abs(bfm.fit(labels).yaw_deg))):
        err = np.abs(est - true)
        per_bin = " / ".join(f"{err[true_bin == b].mean():.2f}" for b in range(3))
        print(f"  {name:9s} {err.mean():.2f} / {np.median(err):.2f} deg; {per_bin}; {(yaw_bin(est) == true_bin).mean():.3f}")

    for folder in ("aflw_val", "300w_train"):
        names, gt = load_annot(Path(args.data) / folder / "annot.pkl")
        pnp, fit = pnp_yaw(gt), np.abs(bfm.fit(gt).yaw_deg)
        print(f"{folder}: faces per bin 0-30/30-60/60-90: solvePnP {np.bincount(yaw_bin(pnp), minlength=3)}, "
              f"BFM fit {np.bincount(yaw_bin(fit), minlength=3)}; same bin {(yaw_bin(pnp) == yaw_bin(fit)).mean():.3f}")
        if folder == "300w_train" and args.relabelled:
            their_names, theirs = load_annot(Path(args.relabelled) / "annot.pkl")
            order = {name: i for i, name in enumerate(their_names)}
            ref = np.abs(bfm.fit(theirs[[order[name] for name in names]]).yaw_deg)
            print(f"  teacher's points, BFM fit: {np.bincount(yaw_bin(ref), minlength=3)}")
            for name, est in (("solvePnP", pnp), ("BFM fit", fit)):
                print(f"  {name} on the labels vs that: |dyaw| {np.abs(est - ref).mean():.2f} deg, "
                      f"same bin {(yaw_bin(est) == yaw_bin(ref)).mean():.3f}")


if __name__ == "__main__":
    main()
