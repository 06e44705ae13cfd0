"""Relabel a folder with a teacher: a labelled set in the teacher's (3D-fit) label convention.

    facelm relabel SRC OUT --teacher 3ddfa_v2:../shared/models/3ddfa_v2[,pixel_centres=1] \\
        [--points all|jaw|blend] [--blend 0.5]
    facelm relabel SRC OUT --fit-bfm ../shared/models/3ddfa_v2 --points jaw

``SRC`` is a challenge-format folder, labelled or not. ``OUT`` gets links to its images (no pixel
is copied), an ``annot.pkl`` with the new points and ``relabel.json`` recording the source, the
teacher and its terms, the mode and the convention, so OUT is checked, cached and trained on like
any set. Modes: ``all`` (the teacher's 68 points), ``jaw`` (the teacher's jaw 0-16, the original
labels elsewhere) and ``blend`` (``w * teacher + (1 - w) * labels`` on every point); the last two
need labels. The teacher sees the full 384-pixel crop (online distillation sees the student's
smaller, augmented input instead).

``--fit-bfm DIR`` replaces the teacher by the 68-point BFM (:class:`facelm.models.bfm.BFM68`) fitted
to each face's own labels: the fit's 68 projected points, whose jaw lies on the 3D model's surface
(the convention of the val set's labels), with no teacher and no image read. On 300w_train the
fitted jaw lies 9.33 px (384 frame) from the teacher's against 11.63 px for the hand-placed jaw,
with the fit's ridge at ``FIT_RIDGE``; fitting only the 51 inner points leaves the face's width to
the prior and puts the jaw 23.5 px off, so the jaw labels take part and the stronger ridge keeps
the shape near the 300W-LP mean where they disagree with it (ridge 1: 10.46 px, 30: 8.93 px).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from facelm.atomic import atomic_dir, write_json
from facelm.data.annot import save_annot
from facelm.data.folder import ANNOT_NAME, imread_rgb, open_folder
from facelm.data.limits import positive_int
from facelm.data.near_duplicates import add_eval_argument, closest_match, guard_images
from facelm.data.preprocess import preprocess_images
from facelm.errors import FacelmError
from facelm.models.bfm import BFM68
from facelm.models.bfm import TERMS as BFM_TERMS
from facelm.models.checkpoint import load_model

JAW = slice(0, 17)
FIT_RIDGE = 10.0
RECORD_NAME = "relabel.json"
MODES = ("all", "jaw", "blend")


def merge_labels(teacher: np.ndarray, labels: np.ndarray | None, mode: str, blend: float) -> np.ndarray:
    """The new (N, 68, 2) labels from the teacher's points and the original ones."""
    if mode == "all":
        return teacher
    if labels is None:
        raise FacelmError(f"--points {mode} needs the source's own labels (annot.pkl)")
    if mode == "jaw":
        out = labels.copy()
        out[:, JAW] = teacher[:, JAW]
        return out
    return blend * teacher + (1 - blend) * labels


@torch.no_grad()
def teacher_points(teacher: str, folder: Path, names: list[str], batch_size: int) -> tuple[np.ndarray, dict]:
    """The teacher's (N, 68, 2) points on each image, in its pixel frame, and the teacher's meta."""
    model, meta = load_model(teacher)
    size = int(meta["input_size"])
    out = []
    for start in range(0, len(names), batch_size):
        images = [imread_rgb(folder / name) for name in names[start : start + batch_size]]
        inputs = torch.from_numpy(preprocess_images(images, size, float(meta.get("gamma", 1.0)), meta.get("gamma_mode", "fixed")))
        hw = np.array([img.shape[1::-1] for img in images], np.float32)  # (B, 2) W, H
        out.append(model(inputs)["landmarks"].numpy() * hw[:, None])
    return (np.concatenate(out) if out else np.zeros((0, 68, 2), np.float32)), meta


def fitted_points(bfm_folder: str | os.PathLike, labels: np.ndarray | None) -> tuple[np.ndarray, dict]:
    """The BFM fit of each face's labels, projected: (N, 68, 2) pixels, and a teacher-like meta."""
    if labels is None:
        raise FacelmError("--fit-bfm fits the source's own labels, and it has none (annot.pkl)")
    fit = BFM68(bfm_folder).fit(labels, ridge=FIT_RIDGE)
    return fit.points3d[..., :2], {"terms": BFM_TERMS, "fit_residual_px": float(fit.residual.mean())}


def relabel(src: str | os.PathLike, out: str | os.PathLike, teacher: str | None, mode: str = "all",
            blend: float = 0.5, batch_size: int = 32, fit_bfm: str | os.PathLike | None = None,
            evaluation: Sequence[str | os.PathLike] = ()) -> dict:
    """Write ``out`` (atomically) and return its provenance record; the points come from ``teacher``
    or, with ``fit_bfm``, from the BFM fit of the source's own 68 labels. The source's images are
    first compared with the ``evaluation`` folders' (a near-duplicate stops it before any labelling)."""
    if (teacher is None) == (fit_bfm is None):
        raise FacelmError("relabel takes one labeller: --teacher SPEC or --fit-bfm DIR")
    if mode not in MODES:
        raise FacelmError(f"unknown relabel mode {mode!r} (one of {', '.join(MODES)})")
    if not 0 <= blend <= 1:
        raise FacelmError(f"--blend must be in [0, 1], not {blend}")
    src, out = Path(src), Path(out)
    if out.resolve() == src.resolve():
        raise FacelmError("relabel would overwrite its source folder", out)
    faces = open_folder(src)
    names = faces.names
    near = guard_images([src / name for name in names], evaluation)
    own = faces.landmarks if faces.labelled else None
    if fit_bfm is None:
        points, meta = teacher_points(teacher, src, names, batch_size)
    else:
        points, meta = fitted_points(fit_bfm, own)
    labels = merge_labels(points, own, mode, blend).astype(np.float32)
    record = {"source": str(src.resolve()), "source_labelled": faces.labelled, "teacher": teacher,
              "teacher_weights_sha256": meta.get("weights_sha256"), "terms": meta.get("terms"),
              **({"fit_bfm": str(Path(fit_bfm).resolve()), "fit_residual_px": meta["fit_residual_px"]} if fit_bfm else {}),
              "mode": mode, "blend": blend if mode == "blend" else None,
              "convention": "3d_jaw" if mode in ("all", "jaw") else "blend", "n_images": len(names),
              "near_duplicates": near}
    if faces.labelled:
        change = np.linalg.norm(labels - faces.landmarks, axis=-1)
        record["mean_change_px"] = float(change.mean())
        record["mean_change_jaw_px"] = float(change[:, JAW].mean())
    with atomic_dir(out) as tmp:
        for name in names:
            os.symlink((src / name).resolve(), tmp / name)
        save_annot(tmp / ANNOT_NAME, names, labels)
        write_json(tmp / RECORD_NAME, record)
    return record


def add_arguments(parser) -> None:
    parser.add_argument("src", help="challenge-format folder (labelled or not)")
    parser.add_argument("out", help="output folder: image links, annot.pkl, relabel.json")
    labeller = parser.add_mutually_exclusive_group(required=True)
    labeller.add_argument("--teacher", help="teacher spec, e.g. 3ddfa_v2:../shared/models/3ddfa_v2")
    labeller.add_argument("--fit-bfm", metavar="DIR", help="no teacher: the 68-point BFM (bfm68_bases.npz, "
                          "param_mean_std_62d.npz in DIR) fitted to each face's labels gives the points")
    parser.add_argument("--points", choices=MODES, default="all", help="which points come from the teacher (default all)")
    parser.add_argument("--blend", type=float, default=0.5, help="teacher weight for --points blend (default 0.5)")
    add_eval_argument(parser)
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--threads", type=positive_int, default=1, help="torch threads (default 1)")


def main(args) -> int:
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    record = relabel(args.src, args.out, args.teacher, args.points, args.blend, args.batch_size, args.fit_bfm, args.eval)
    moved = f", labels moved {record['mean_change_px']:.2f} px on average" if "mean_change_px" in record else ""
    labeller = args.teacher or f"the BFM fit of the labels (residual {record['fit_residual_px']:.2f} px)"
    print(f"{args.out}: {record['n_images']} faces relabelled by {labeller} ({args.points}){moved}; "
          f"{closest_match(record['near_duplicates'])}, {time.perf_counter() - started:.0f} s")
    return 0
