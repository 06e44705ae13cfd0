"""Landmarks through a face detector vs on the direct crops, for one model, on a labelled folder.

    python benchmarks/detect_accuracy.py --model results/runs/m/all/model.pt --detector yunet

Runs the detector on every crop of ``--folder`` (default ../shared/data/aflw_val), counts the faces
it finds (a box centre inside the labelled 68-point box, the issue's definition), predicts those
faces through the detector's calibrated framing (:func:`facelm.inference.faces.predict_faces`) and
directly on the crop, and prints both NMEs (x100, /384) on the same faces and their ratio. The
calibration is the detector's stored one (fitted on 300w_train), or ``--recalibrate roll|no-roll``
refits it on ``--calibration-folder`` (training crops, never the folder judged here).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from facelm.data.folder import imread_rgb, open_folder
from facelm.inference.detectors.detection import match_face
from facelm.inference.detectors.registry import DETECTORS, calibrate, create_detector
from facelm.inference.faces import predict_faces
from facelm.inference.loading import load_predictor
from facelm.metrics import nme

#: ../shared/data beside the repo, or $FACELM_SHARED_DATA (as in tests/conftest.py)
DATA = Path(os.environ.get("FACELM_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--detector", default="yunet", choices=sorted(DETECTORS))
    parser.add_argument("--folder", default=str(DATA / "aflw_val"), help="labelled crops to judge on")
    parser.add_argument("--recalibrate", choices=("roll", "no-roll"), help="refit the calibration first")
    parser.add_argument("--calibration-folder", default=str(DATA / "300w_train"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)

    detector = create_detector(args.detector)
    if args.recalibrate:
        fitted, used = calibrate(detector, args.calibration_folder, roll=args.recalibrate == "roll")
        print(f"calibration refitted on {used} faces of {args.calibration_folder}: {fitted}")
        detector.calibration = fitted
    else:
        print(f"stored calibration: {detector.calibration}")
    predictor = load_predictor(args.model)
    faces = open_folder(args.folder)
    images = [imread_rgb(faces.path(name)) for name in faces.names]
    truth = np.asarray(faces.landmarks, np.float32)

    start = time.perf_counter()
    through = predict_faces(predictor, images, detector=detector)
    seconds = time.perf_counter() - start
    matched = [match_face(found, gt) for found, gt in zip(through, truth)]
    hit = np.array([m is not None for m in matched])
    via_detector = np.stack([found.landmarks[m] for found, m in zip(through, matched) if m is not None])
    direct = predictor.predict(np.stack(images)[hit])
    nme_direct = 100 * nme(direct, truth[hit]).mean()
    nme_detector = 100 * nme(via_detector, truth[hit]).mean()
    print(f"{args.detector}: found {hit.sum()}/{len(images)} faces of {args.folder} "
          f"({1000 * seconds / len(images):.0f} ms/img detect+predict, {args.threads} thread(s))")
    print(f"NME x100 on the found faces: direct crop {nme_direct:.3f}, through the detector {nme_detector:.3f} "
          f"(ratio {nme_detector / nme_direct:.3f})")


if __name__ == "__main__":
    main()
