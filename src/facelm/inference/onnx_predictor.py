"""Predict with an exported ``.onnx`` (onnxruntime, CPU) through the shared predictor API.

Batching, preprocessing (gamma at full resolution, INTER_AREA resize), flip TTA and the
mapping back to each image's frame come from :class:`facelm.inference.base.BasePredictor`; this
class only runs the graph. Input size and gamma are read from the model card that
``facelm export`` writes beside the graph (``face.onnx`` -> ``face.json``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from facelm.errors import FacelmError
from facelm.json_input import read_json
from facelm.inference.base import BasePredictor, Images


class OnnxPredictor(BasePredictor):
    """``OnnxPredictor("face.onnx", threads=1).predict(images) -> (N, 68, 2)`` in the image frame.

    ``threads``: onnxruntime intra-op threads (None = onnxruntime's default, all cores).
    ``hflip_tta`` in :meth:`predict` defaults to the card's value (an exported ensemble
    keeps its spec's flag).
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise FacelmError("model file not found", path)
        card_file = path.with_suffix(".json")
        try:
            card = read_json(card_file, "model card")
            self.input_size = int(card["input_size"])
            self.gamma = float(card.get("gamma", 1.0))
            self.gamma_mode = str(card.get("gamma_mode", "fixed"))
        except FacelmError as err:
            raise FacelmError(f"{err}; re-export with `facelm export`") from None
        except (KeyError, TypeError, ValueError) as err:
            raise FacelmError(f"model card missing or unreadable ({type(err).__name__}); "
                              f"re-export with `facelm export`", card_file) from None
        self.card = card
        self.meta = card
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads is not None:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own (non-exported) exception types for bad files
            raise FacelmError(f"not an ONNX model ({type(err).__name__}: {str(err).splitlines()[0][:160]})", path) from None
        self.input_name = self.session.get_inputs()[0].name
        self.path = path

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)})[0]

    def predict(self, images: Images, batch_size: int = 64, hflip_tta: bool | None = None) -> np.ndarray:
        tta = bool(self.card.get("hflip_tta", False)) if hflip_tta is None else hflip_tta
        return super().predict(images, batch_size, tta)
