"""Measure a face detector's box -> landmark-box calibration on TRAINING crops (never on aflw_val).

    python benchmarks/detect_calibration.py --detector yunet   # prints the BoxCalibration to store in code

Fits :func:`facelm.inference.detectors.registry.calibrate` on ``--folder`` (default ../shared/data/300w_train)
and prints the constants plus the faces used; the detector modules quote this command next to
their stored constants.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import cv2

from facelm.data.folder import open_folder
from facelm.inference.detectors.registry import calibrate, create_detector

DATA = Path(os.environ.get("FACELM_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
DEFAULT_FOLDER = DATA / "300w_train"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", default="yunet")
    parser.add_argument("--folder", default=str(DEFAULT_FOLDER), help="labelled training crops")
    parser.add_argument("--no-roll", action="store_true", help="fit without the keypoint roll")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    detector = create_detector(args.detector)
    start = time.perf_counter()
    fitted, used = calibrate(detector, args.folder, roll=False if args.no_roll else None)
    total = len(open_folder(args.folder))
    print(f"{args.detector}: {fitted} from {used}/{total} faces of {args.folder} ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
