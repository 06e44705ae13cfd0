"""How far a student's points lie from its teacher's, beside both scores: a student must differ from
the teacher in its points, not only in its weights.

    python benchmarks/teacher_agreement.py src/facelm/weights/fast.onnx ../shared/data/aflw_val \\
        --teacher 3ddfa_v2:../shared/models/3ddfa_v2

Prints, per yaw bin and overall: the mean distance (px of the 384 crop) between the model's and the
teacher's points, the share of faces whose points moved by more than 2 px on average, and each one's
NME/384 x100 against the folder's labels.
"""

from __future__ import annotations

import argparse

import numpy as np

from facelm.challenge.evaluate import scores
from facelm.data.folder import open_folder
from facelm.inference.base import predict_folder
from facelm.inference.loading import load_predictor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="model.pt or .onnx")
    parser.add_argument("folder", help="labelled challenge-format folder")
    parser.add_argument("--teacher", required=True, help="teacher spec or model")
    args = parser.parse_args()
    gt = open_folder(args.folder).landmarks
    mine = predict_folder(load_predictor(args.model), args.folder)[1]
    theirs = predict_folder(load_predictor(args.teacher), args.folder)[1]
    apart = np.linalg.norm(mine - theirs, axis=-1).mean(axis=1)  # (N,) px
    mine_scores, their_scores = scores(mine, gt), scores(theirs, gt)
    yaw_bin = np.digitize(np.abs(np.degrees(_label_yaw(gt))), [30, 60])
    print("| yaw | faces | mean distance to the teacher, px | faces > 2 px apart | model NME | teacher NME |")
    print("|---|---|---|---|---|---|")
    for i, (mine_bin, their_bin) in enumerate(zip(mine_scores["by_yaw"], their_scores["by_yaw"])):
        mask = yaw_bin == i
        print(f"| {mine_bin['yaw_deg']}° | {int(mask.sum())} | {apart[mask].mean():.2f} | {100 * (apart[mask] > 2).mean():.0f} % "
              f"| {mine_bin['nme_384']:.2f} | {their_bin['nme_384']:.2f} |")
    print(f"| all | {len(gt)} | {apart.mean():.2f} | {100 * (apart > 2).mean():.0f} % | {mine_scores['nme_384']:.3f} "
          f"| {their_scores['nme_384']:.3f} |")


def _label_yaw(gt: np.ndarray) -> np.ndarray:
    from facelm.data.pose import pose_from_landmarks

    return pose_from_landmarks(gt, 384)[:, 0]


if __name__ == "__main__":
    main()
