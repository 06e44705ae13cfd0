"""The public prediction API: a model file in, a predictor out.

    predictor = load_predictor("model.pt")          # or .onnx, or an ensemble .json
    points = predictor.predict(images)              # uint8 RGB (N, H, W, 3) -> (N, 68, 2)

The one place that knows every predictor kind, so the kinds never import each other.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from facelm.errors import FacelmError
from facelm.inference.base import BasePredictor, Images
from facelm.inference.onnx_predictor import OnnxPredictor
from facelm.inference.predictor import Predictor
from facelm.models.checkpoint import read_ensemble_spec


class EnsemblePredictor(BasePredictor):
    """Weighted mean of member predictors, in the image frame (members may use different input sizes)."""

    def __init__(self, members: list[BasePredictor], weights: Sequence[float], hflip_tta: bool = False):
        if not members:
            raise FacelmError("an ensemble needs at least one member")
        self.members = members
        self.weights = np.asarray(weights, np.float64) / np.sum(weights)
        self.hflip_tta = hflip_tta

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "EnsemblePredictor":
        spec, entries = read_ensemble_spec(path)
        predictors = [load_predictor(member) for member, _ in entries]
        return cls(predictors, [weight for _, weight in entries], bool(spec.get("hflip_tta", False)))

    def predict(self, images: Images, batch_size: int = 64, hflip_tta: bool | None = None) -> np.ndarray:
        tta = self.hflip_tta if hflip_tta is None else hflip_tta
        preds = [m.predict(images, batch_size, tta) for m in self.members]
        return np.tensordot(self.weights, np.stack(preds), axes=1).astype(np.float32)


def load_predictor(path: str | os.PathLike, device: str | None = None) -> BasePredictor:
    """A predictor for a ``.pt`` model, an ``.onnx`` export or an ensemble ``.json``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return OnnxPredictor(path)
    if suffix == ".json":
        return EnsemblePredictor.from_file(path)
    return Predictor.from_file(path, device)
