"""MTCNN (Zhang et al. 2016), three small ONNX networks shipped inside facelm and run by onnxruntime.

The detector every platform has: its weights are package data (``facelm/inference/detectors/mtcnn_*.onnx``,
2 MB; see ``facelm/inference/detectors/LICENSE.txt``), so it needs nothing beyond the inference-only install's
onnxruntime and OpenCV (no optional wheel, no ``onnx`` import). It gives 5 keypoints (eyes, nose tip,
mouth corners) that set the crop's roll.

The networks take RGB patches scaled to [-1, 1] with the two image axes swapped (the Caffe
original's column-major layout, kept by the conversion): P-Net scans an image pyramid for 12 px
candidates, R-Net (24 px) and O-Net (48 px) re-score and refine them; O-Net gives the keypoints.
"""

from __future__ import annotations

from importlib.resources import files

import cv2
import numpy as np

from facelm.errors import FacelmError
from facelm.inference.detectors.detection import Detections, within_long_side
from facelm.inference.framing import BoxCalibration

#: MTCNN box + keypoint roll -> landmark box, measured with
#: ``python benchmarks/detect_calibration.py --detector mtcnn`` (calibrate() on the crops of
#: ../shared/data/300w_train, 1,206 of the 1,207 found; never on aflw_val). Like YuNet's, its box includes the
#: forehead (dy > 0: the 68 points stop at the brows).
MTCNN_CALIBRATION = BoxCalibration(dx=0.0099, dy=0.1549, scale=0.8781, roll=True)

_STAGES = ("pnet", "rnet", "onet")


def _session(stage: str):
    import onnxruntime

    path = files("facelm") / "inference" / "detectors" / f"mtcnn_{stage}.onnx"
    if not path.is_file():
        raise FacelmError(f"detector 'mtcnn': its weights are missing from the installed package ({path}); reinstall facelm")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.log_severity_level = 1, 3
    return onnxruntime.InferenceSession(path.read_bytes(), options, providers=["CPUExecutionProvider"])


def _normalised(patches: np.ndarray) -> np.ndarray:
    """uint8 RGB (N, H, W, 3) -> the networks' float input (N, W, H, 3) in [-1, 1]."""
    return np.ascontiguousarray(((patches.astype(np.float32) - 127.5) / 128.0).transpose(0, 2, 1, 3))


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, by_min: bool = False) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best first; overlap is IoU, or the
    intersection over the smaller box with ``by_min``."""
    order, keep = np.argsort(-scores, kind="stable"), []
    area = np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1)
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        inter = np.prod(np.clip(np.minimum(boxes[i, 2:], boxes[rest, 2:]) - np.maximum(boxes[i, :2], boxes[rest, :2]), 0, None), axis=1)
        union = np.minimum(area[i], area[rest]) if by_min else area[i] + area[rest] - inter
        order = rest[inter / np.maximum(union, 1e-9) <= threshold]
    return np.asarray(keep, np.int64)


def _refine(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Boxes moved by the networks' offsets (fractions of the box's width and height)."""
    size = boxes[:, 2:] - boxes[:, :2]
    return boxes + offsets * np.concatenate([size, size], axis=1)


def _square(boxes: np.ndarray) -> np.ndarray:
    """Squares of each box's longer side around its centre."""
    centre, side = (boxes[:, :2] + boxes[:, 2:]) / 2, np.max(boxes[:, 2:] - boxes[:, :2], axis=1, keepdims=True)
    return np.concatenate([centre - side / 2, centre + side / 2], axis=1)


def _patches(image: np.ndarray, boxes: np.ndarray, side: int) -> np.ndarray:
    """Each box of ``image`` resampled to ``side`` x ``side`` (outside the image: black)."""
    out = np.zeros((len(boxes), side, side, 3), np.uint8)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        k = side / max(x1 - x0, 1e-6)
        # patch pixel centre u + 0.5 = k (x + 0.5 - x0)
        warp = np.array([[k, 0, k * (0.5 - x0) - 0.5], [0, side / max(y1 - y0, 1e-6), side / max(y1 - y0, 1e-6) * (0.5 - y0) - 0.5]])
        out[i] = cv2.warpAffine(image, warp, (side, side), flags=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out


class MtcnnDetector:
    """MTCNN on the image scaled to at most ``max_side`` pixels on the long side; faces of at least
    ``min_face`` pixels there are searched, and faces below ``min_score`` (0..1, O-Net's) dropped."""

    calibration = MTCNN_CALIBRATION
    THRESHOLDS = (0.6, 0.7)  # P-Net, R-Net candidate scores
    PYRAMID_STEP = 0.709

    def __init__(self, min_score: float = 0.5, max_side: int = 640, min_face: int = 20):
        self.pnet, self.rnet, self.onet = (_session(stage) for stage in _STAGES)
        self.min_score, self.max_side, self.min_face = min_score, max_side, min_face

    def detect_batch(self, images: list[np.ndarray]) -> list[Detections]:
        """One pyramid per image (sizes differ); R-Net and O-Net run each image's candidates as one batch."""
        return [self._detect_one(image) for image in images]

    def _detect_one(self, image: np.ndarray) -> Detections:
        small, scale = within_long_side(image, self.max_side)
        boxes = self._proposals(small)
        if len(boxes):
            reg, prob = self.rnet.run(None, {self.rnet.get_inputs()[0].name: _normalised(_patches(small, boxes, 24))})
            passed = np.flatnonzero(prob[:, 1] >= self.THRESHOLDS[1])
            keep = passed[nms(boxes[passed], prob[passed, 1], 0.7)]
            boxes = _square(_refine(boxes[keep], reg[keep]))
        if not len(boxes):
            return Detections.empty(with_keypoints=True)
        reg, marks, prob = self.onet.run(None, {self.onet.get_inputs()[0].name: _normalised(_patches(small, boxes, 48))})
        keep = prob[:, 1] >= self.min_score
        boxes, reg, marks, scores = boxes[keep], reg[keep], marks[keep], prob[keep, 1]
        size = boxes[:, 2:] - boxes[:, :2]
        keypoints = np.stack([marks[:, :5], marks[:, 5:]], axis=-1) * size[:, None, :] + boxes[:, None, :2]
        boxes = _refine(boxes, reg)
        keep = nms(boxes, scores, 0.7, by_min=True)
        return Detections((boxes[keep] / scale).astype(np.float32), scores[keep].astype(np.float32),
                          (keypoints[keep] / scale).astype(np.float32))

    def _proposals(self, image: np.ndarray) -> np.ndarray:
        """P-Net's candidate squares (K, 4) over the image pyramid."""
        h, w = image.shape[:2]
        level, boxes, offsets, scores = 12 / self.min_face, [], [], []
        while min(h, w) * level >= 12:
            scaled = cv2.resize(image, (int(np.ceil(w * level)), int(np.ceil(h * level))), interpolation=cv2.INTER_AREA)
            reg, prob = self.pnet.run(None, {self.pnet.get_inputs()[0].name: _normalised(scaled[None])})
            xs, ys = np.nonzero(prob[0, :, :, 1] >= self.THRESHOLDS[0])  # outputs are (x, y)-indexed
            cells = np.stack([xs, ys, xs, ys], axis=1) * 2.0 + [0, 0, 12, 12]
            keep = nms(cells, prob[0, xs, ys, 1], 0.5)
            boxes.append(cells[keep] / level)
            offsets.append(reg[0, xs[keep], ys[keep]])
            scores.append(prob[0, xs[keep], ys[keep], 1])
            level *= self.PYRAMID_STEP
        if not boxes:
            return np.zeros((0, 4))
        boxes, offsets, scores = np.concatenate(boxes), np.concatenate(offsets), np.concatenate(scores)
        keep = nms(boxes, scores, 0.7)
        return _square(_refine(boxes[keep], offsets[keep]))
