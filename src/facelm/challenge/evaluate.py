"""Score a model (``.pt``, ``.onnx`` or ensemble ``.json``) on a labelled folder.

Predictions are made in, and compared in, the folder's own 384-pixel frame. Reported (x100):
``nme_384`` (the challenge's normaliser, /384), ``nme_box`` (/sqrt(w*h) of the GT box),
``nme_io`` (/outer-eye-corner distance), ``fr_box_10`` (failure rate: share of faces with box
NME > 10 %), ``auc_box_10`` (area under the box-NME CED up to 10 %), NME by face region (jaw,
brows, nose, eyes, mouth) overall and per yaw bin (yaw from the ground truth,
:mod:`facelm.data.pose`), and a CED curve PNG.

Given the 68-point BFM (``face_model``, e.g. ``../shared/models/3ddfa_v2``), the faces are also
binned by the yaw of a 3D fit of their labels (:meth:`facelm.models.bfm.BFM68.fit`), reported as
``by_yaw_3d_fit``. On faces drawn from the BFM with a known pose it errs by 1.9 degrees against
solvePnP's 4.6 (benchmarks/README.md, "Yaw of the labels"), so it puts aflw_val's faces, whose
labels are BFM keypoints, in their true bins more often; ``by_yaw`` stays the solvePnP one, the
bins every figure in the accuracy log was measured with.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from facelm.atomic import atomic_path, write_json
from facelm.errors import FacelmError
from facelm.data.folder import open_folder
from facelm.data.limits import positive_int
from facelm.landmarks68 import REPORT_REGIONS
from facelm.metrics import auc, ced_curve, failure_rate, nme
from facelm.data.pose import YAW_BINS, pose_from_landmarks, yaw_bin

#: Face regions of the 68 points (iBUG order), as every report names them.
REGIONS = REPORT_REGIONS


def region_nme(pred: np.ndarray, gt: np.ndarray, size: float = 384) -> dict[str, float]:
    """NME x100 (/size) of each region's points, averaged over faces."""
    err = np.linalg.norm(pred - gt, axis=-1) / size  # (N, 68)
    return {name: 100 * float(err[:, idx].mean()) for name, idx in REGIONS.items()}


def fitted_yaw_deg(gt: np.ndarray, face_model: str | os.PathLike) -> np.ndarray:
    """|yaw| in degrees of a 3D fit of the BFM in ``face_model`` to each face's labels."""
    from facelm.models.bfm import BFM68

    return np.abs(BFM68(face_model).fit(gt).yaw_deg)


def _by_yaw(pred: np.ndarray, gt: np.ndarray, size: float, per_384: np.ndarray, yaw_deg: np.ndarray) -> list[dict]:
    bins, face_bin = [], yaw_bin(yaw_deg)
    for i, (low, high) in enumerate(YAW_BINS):
        mask = face_bin == i
        bins.append({"yaw_deg": f"{low}-{high}", "n_images": int(mask.sum()),
                     "nme_384": 100 * float(per_384[mask].mean()) if mask.any() else None,
                     "by_region": region_nme(pred[mask], gt[mask], size) if mask.any() else None})
    return bins


def scores(pred: np.ndarray, gt: np.ndarray, size: float = 384, fitted_yaw: np.ndarray | None = None) -> dict:
    """``fitted_yaw``: :func:`fitted_yaw_deg` of ``gt``, to add ``by_yaw_3d_fit``."""
    per_box = nme(pred, gt, "box")
    per_384 = nme(pred, gt, "384", size)
    yaw = np.abs(np.degrees(pose_from_landmarks(gt, size)[:, 0]))
    fitted = {} if fitted_yaw is None else {"by_yaw_3d_fit": _by_yaw(pred, gt, size, per_384, fitted_yaw)}
    return {
        "nme_384": 100 * float(per_384.mean()),
        "nme_box": 100 * float(per_box.mean()),
        "nme_io": 100 * float(nme(pred, gt, "io").mean()),
        "fr_box_10": 100 * failure_rate(per_box, 0.10),
        "auc_box_10": 100 * auc(per_box, 0.10),
        "n_images": int(len(gt)),
        "by_region": region_nme(pred, gt, size),
        "by_yaw": _by_yaw(pred, gt, size, per_384, yaw),
        **fitted,
    }


YAW_SOURCES = {"by_yaw": "yaw (from the labels)", "by_yaw_3d_fit": "yaw (3D fit of the labels)"}


def region_table(result: dict, key: str = "by_yaw") -> list[str]:
    """Markdown table: faces, NME and per-region NME for each yaw bin (``key``: one of
    :data:`YAW_SOURCES`) and for all faces."""
    lines = [f"| {YAW_SOURCES[key]} | faces | all | " + " | ".join(REGIONS) + " |", "|---" * (3 + len(REGIONS)) + "|"]
    rows = [(row["yaw_deg"] + "°", row["n_images"], row["nme_384"], row["by_region"]) for row in result[key]]
    rows.append(("all", result["n_images"], result["nme_384"], result["by_region"]))
    for label, n, value, regions in rows:
        cells = ["-"] * (1 + len(REGIONS)) if value is None else [f"{value:.2f}"] + [f"{regions[r]:.2f}" for r in REGIONS]
        lines.append(f"| {label} | {n} | " + " | ".join(cells) + " |")
    return lines


def evaluate(predictor, folder: str | os.PathLike, batch_size: int = 64, hflip_tta: bool | None = None,
             face_model: str | os.PathLike | None = None) -> tuple[dict, np.ndarray, np.ndarray]:
    """(scores, predictions, ground truth) of ``predictor`` on a labelled folder (``face_model``:
    also bin by a 3D fit's yaw, see the module docstring)."""
    from facelm.inference.base import predict_folder

    faces = open_folder(folder)
    if not faces.labelled:
        raise FacelmError("folder has no annot.pkl to score against", folder)
    fitted = fitted_yaw_deg(faces.landmarks, face_model) if face_model else None  # a bad folder fails before predicting
    names, pred = predict_folder(predictor, folder, batch_size, hflip_tta)
    return scores(pred, faces.landmarks, fitted_yaw=fitted), pred, faces.landmarks


def plot_ced(curves: dict[str, np.ndarray], out_png: str | os.PathLike, threshold: float = 0.1) -> None:
    """CED curves (box-normalised NME) of several prediction sets in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, per_image in curves.items():
        xs, ys = ced_curve(per_image, threshold)
        ax.plot(100 * xs, ys, label=f"{label} (AUC {100 * auc(per_image, threshold):.1f})")
    ax.set_xlabel("NME (% of box size)")
    ax.set_ylabel("fraction of faces")
    ax.set_xlim(0, 100 * threshold)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    # outside the axes: curves rise to the lower right, where a legend inside would cover them
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, borderaxespad=0)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")  # keeps the legend beside the axes
    plt.close(fig)


def add_arguments(parser) -> None:
    parser.add_argument("model", help="model.pt, export.onnx or ensemble.json")
    parser.add_argument("folder", help="labelled challenge-format folder")
    parser.add_argument("--out", help="write the scores as JSON")
    parser.add_argument("--ced", help="write the CED curve PNG")
    parser.add_argument("--hflip-tta", action="store_true", help="average with the mirrored prediction")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    add_face_model_argument(parser)


def add_face_model_argument(parser) -> None:
    parser.add_argument("--face-model", help="folder of the 68-point BFM (e.g. ../shared/models/3ddfa_v2): "
                                             "also report by the yaw of a 3D fit of the labels")


def main(args) -> int:
    from facelm.inference.loading import load_predictor

    predictor = load_predictor(args.model)
    result, pred, gt = evaluate(predictor, args.folder, args.batch_size, True if args.hflip_tta else None,
                                args.face_model)
    print(f"{Path(args.folder).name}: {result['n_images']} faces")
    for key in ("nme_box", "nme_io", "fr_box_10", "auc_box_10"):
        print(f"  {key:<11} {result[key]:.3f}")
    print("\n".join(region_table(result)))
    if args.face_model:
        print("\n".join(region_table(result, "by_yaw_3d_fit")))
    if args.out:
        write_json(args.out, {"model": str(args.model), "folder": str(args.folder), **result})
    if args.ced:
        plot_ced({Path(args.model).stem: nme(pred, gt, "box")}, args.ced)
    print(f"  nme_384     {result['nme_384']:.3f}")
    return 0
