"""``facelm score SOLUTION ANNOT_PKL``: NME x100 (/384) of a solution against labels; the number is printed last."""

from __future__ import annotations

import os


from facelm.data.annot import load_annot
from facelm.errors import FacelmError
from facelm.metrics import nme
from facelm.challenge.submission_check import validate_solution


def score_solution(solution: str | os.PathLike, annot: str | os.PathLike) -> float:
    names, landmarks = load_annot(annot)
    sol_names, points = validate_solution(solution, names)
    order = {n: i for i, n in enumerate(sol_names)}
    pred = points[[order[n] for n in names]]
    if not len(names):
        raise FacelmError("no labelled images", annot)
    return 100 * float(nme(pred, landmarks).mean())


def add_arguments(parser) -> None:
    parser.add_argument("solution", help="solution.txt or .zip")
    parser.add_argument("annot", help="annot.pkl with the true landmarks")


def main(args) -> int:
    value = score_solution(args.solution, args.annot)
    print(f"NME x100 (mean point error / 384) of {args.solution}:")
    print(f"{value:.4f}")
    return 0
