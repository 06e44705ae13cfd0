"""YuNet (libfacedetection, BSD-3), compiled into the ``yuface`` wheel: the default face detector.

Finds turned faces the Haar cascade misses (198 of the 199 aflw_val crops) and gives 5 keypoints
(eyes, nose tip, mouth corners) that set the crop's roll. ``yuface==2023.5.1`` has wheels for
CPython 3.11 on Linux x86_64 and Windows only; elsewhere ``auto`` runs the bundled MTCNN.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from facelm.errors import FacelmError
from facelm.inference.detectors.detection import Detections, within_long_side
from facelm.inference.framing import BoxCalibration

#: YuNet box + keypoint roll -> landmark box, measured with
#: ``python benchmarks/detect_calibration.py --detector yunet`` (calibrate() on the 1,207 crops of
#: ../shared/data/300w_train, all found; never on aflw_val). The landmark box sits lower than YuNet's
#: box (dy > 0: the box includes the forehead, the 68 points stop at the brows) and is a little
#: smaller. tests/inference/test_detect.py re-measures it on a subset.
YUNET_CALIBRATION = BoxCalibration(dx=0.006, dy=0.1486, scale=0.8805, roll=True)


def _load_yuface():
    """Import yuface with its bundled OpenMP pool at one thread: on a busy machine its spinning
    threads make a 384 px detection take 0.5 s instead of 25 ms (libgomp reads the variable when
    the library loads, so it is set only around the import)."""
    previous = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        from yuface.yuface import detect
    except ImportError as err:
        raise FacelmError("detector 'yunet' needs the yuface package (pip install yuface==2023.5.1; wheels for "
                          f"CPython 3.11 on Linux x86_64 and Windows): {err}; try --detector mtcnn") from None
    finally:
        if previous is None:
            del os.environ["OMP_NUM_THREADS"]
        else:
            os.environ["OMP_NUM_THREADS"] = previous
    return detect


class YuNetDetector:
    """YuNet on the image scaled to at most ``max_side`` pixels on the long side (the library warns
    above 960); faces below ``min_score`` (0..1) are dropped."""

    calibration = YUNET_CALIBRATION

    def __init__(self, min_score: float = 0.5, max_side: int = 640):
        self._detect = _load_yuface()
        self.min_score = min_score
        self.max_side = max_side

    def detect_batch(self, images: list[np.ndarray]) -> list[Detections]:
        """One library call per image: libfacedetection has no batched entry point."""
        return [self._detect_one(image) for image in images]

    def _detect_one(self, image: np.ndarray) -> Detections:
        bgr, scale = within_long_side(np.ascontiguousarray(image[:, :, ::-1]), self.max_side)
        # rows: score 0..100, x, y, w, h, 5 keypoints x, y (int16, scaled-image pixels), one more column
        rows = np.asarray(self._detect(bgr), np.float32).reshape(-1, 16)
        rows = rows[rows[:, 0] >= 100 * self.min_score]
        rows = rows[np.argsort(-rows[:, 0], kind="stable")]
        boxes = np.concatenate([rows[:, 1:3], rows[:, 1:3] + rows[:, 3:5]], axis=1) / scale
        keypoints = rows[:, 5:15].reshape(-1, 5, 2) / scale
        return Detections(boxes.astype(np.float32), rows[:, 0] / 100, keypoints.astype(np.float32))
