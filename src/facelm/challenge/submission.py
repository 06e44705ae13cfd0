"""Predict the test folder and write ``solution.txt`` + ``solution.zip`` (validated before kept).

Rows: ``name x1 y1 ... x68 y68`` in the 384-pixel frame, single spaces, 4 decimals. With
``--val`` the same predictor also writes ``val_solution.txt`` for the validation folder and
scores it (``val_score.json``), so the pipeline reports the number the leaderboard would.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from facelm import layout
from facelm.atomic import atomic_path, write_json
from facelm.data.folder import ANNOT_NAME, open_folder
from facelm.data.limits import check_names, positive_int
from facelm.inference.base import predict_folder
from facelm.inference.loading import load_predictor
from facelm.challenge.submission_check import SOLUTION_NAME, validate_solution


def solution_line(name: str, points: np.ndarray) -> str:
    """One row: the image name and its 68 x/y pairs, single spaces, 4 decimals."""
    return name + " " + " ".join(f"{v:.4f}" for v in points.reshape(-1)) + "\n"


def write_solution(path: Path, names: list[str], points: np.ndarray) -> None:
    """Write row by row (no whole text in memory), validate the temporary file, then rename: a bad file
    never replaces a good one."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as handle:
            for name, row in zip(names, points):
                handle.write(solution_line(name, row))
        validate_solution(tmp, names, shown_as=path)


def write_zip(txt: Path, out_zip: Path) -> None:
    with atomic_path(out_zip) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.write(txt, SOLUTION_NAME)


def add_arguments(parser) -> None:
    parser.add_argument("--model", required=True, help="ensemble .json, model.pt or .onnx")
    parser.add_argument("--test", required=True, help="test folder")
    parser.add_argument("--val", help="labelled folder to predict and score as well")
    parser.add_argument("--out-dir", required=True, help="submissions/<run>")
    parser.add_argument("--batch-size", type=positive_int, default=64)


def main(args) -> int:
    from facelm.challenge.score import score_solution

    out = Path(args.out_dir)
    files = {role: out / name for role, name in layout.SUBMISSION_FILES.items()}
    for folder in [args.test] + ([args.val] if args.val else []):
        check_names(folder, open_folder(folder).names)  # before any work: the solution format must carry them
    predictor = load_predictor(args.model)
    names, points = predict_folder(predictor, args.test, args.batch_size)
    write_solution(files["solution"], names, points)
    write_zip(files["solution"], files["zip"])
    validate_solution(files["zip"], names)
    print(f"{files['zip']}: {len(names)} rows, valid")
    if args.val:
        val_names, val_points = predict_folder(predictor, args.val, args.batch_size)
        write_solution(files["val_solution"], val_names, val_points)
        value = score_solution(files["val_solution"], Path(args.val) / ANNOT_NAME)
        write_json(files["val_score"], {"model": str(args.model), "val_folder": str(args.val), "nme_384": value,
                                            "n_images": len(val_names)})
        print(f"val NME x100 (/384): {value:.4f}")
    return 0
