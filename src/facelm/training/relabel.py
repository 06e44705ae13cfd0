"""Relabel a folder with a teacher: a labelled set in the teacher's (3D-fit) label convention.

    facelm relabel SRC OUT --teacher 3ddfa_v2:../shared/models/3ddfa_v2[,pixel_centres=1] \\
        [--points all|jaw|blend] [--blend 0.5]

``SRC`` is a challenge-format folder, labelled or not. ``OUT`` gets links to its images (no pixel
is copied), an ``annot.pkl`` with the new points and ``relabel.json`` recording the source, the
teacher and its terms, the mode and the convention, so OUT is checked, cached and trained on like
any set. Modes: ``all`` (the teacher's 68 points), ``jaw`` (the teacher's jaw 0-16, the original
labels elsewhere) and ``blend`` (``w * teacher + (1 - w) * labels`` on every point); the last two
need labels. The teacher sees the full 384-pixel crop (online distillation sees the student's
smaller, augmented input instead).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch

from facelm.atomic import atomic_dir, write_json
from facelm.data.annot import save_annot
from facelm.data.folder import ANNOT_NAME, imread_rgb, open_folder
from facelm.data.limits import positive_int
from facelm.data.preprocess import preprocess_images
from facelm.errors import FacelmError
from facelm.models.checkpoint import load_model

JAW = slice(0, 17)
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


def relabel(src: str | os.PathLike, out: str | os.PathLike, teacher: str, mode: str = "all", blend: float = 0.5,
            batch_size: int = 32) -> dict:
    """Write ``out`` (atomically) and return its provenance record."""
    if mode not in MODES:
        raise FacelmError(f"unknown relabel mode {mode!r} (one of {', '.join(MODES)})")
    if not 0 <= blend <= 1:
        raise FacelmError(f"--blend must be in [0, 1], not {blend}")
    src, out = Path(src), Path(out)
    if out.resolve() == src.resolve():
        raise FacelmError("relabel would overwrite its source folder", out)
    faces = open_folder(src)
    names = faces.names
    points, meta = teacher_points(teacher, src, names, batch_size)
    labels = merge_labels(points, faces.landmarks if faces.labelled else None, mode, blend).astype(np.float32)
    record = {"source": str(src.resolve()), "source_labelled": faces.labelled, "teacher": teacher,
              "teacher_weights_sha256": meta.get("weights_sha256"), "terms": meta.get("terms"),
              "mode": mode, "blend": blend if mode == "blend" else None,
              "convention": "3d_jaw" if mode in ("all", "jaw") else "blend", "n_images": len(names)}
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
    parser.add_argument("--teacher", required=True, help="teacher spec, e.g. 3ddfa_v2:../shared/models/3ddfa_v2")
    parser.add_argument("--points", choices=MODES, default="all", help="which points come from the teacher (default all)")
    parser.add_argument("--blend", type=float, default=0.5, help="teacher weight for --points blend (default 0.5)")
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--threads", type=positive_int, default=1, help="torch threads (default 1)")


def main(args) -> int:
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    record = relabel(args.src, args.out, args.teacher, args.points, args.blend, args.batch_size)
    moved = f", labels moved {record['mean_change_px']:.2f} px on average" if "mean_change_px" in record else ""
    print(f"{args.out}: {record['n_images']} faces relabelled by {args.teacher} ({args.points}){moved}, "
          f"{time.perf_counter() - started:.0f} s")
    return 0
