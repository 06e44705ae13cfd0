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

#: Deepest nesting of ensemble specs (an ensemble whose member is an ensemble ...).
MAX_ENSEMBLE_NESTING = 8


class EnsemblePredictor(BasePredictor):
    """Weighted mean of member predictors, in the image frame (members may use different input sizes)."""

    def __init__(self, members: list[BasePredictor], weights: Sequence[float], hflip_tta: bool = False):
        if not members:
            raise FacelmError("an ensemble needs at least one member")
        self.members = members
        self.weights = np.asarray(weights, np.float64) / np.sum(weights)
        self.hflip_tta = hflip_tta

    @classmethod
    def from_file(cls, path: str | os.PathLike, within: tuple[Path, ...] = ()) -> "EnsemblePredictor":
        """Load an ensemble spec; ``within``: the specs that name this one (a member spec may be an ensemble)."""
        path = Path(path)
        if path.resolve() in within:
            raise FacelmError(f"a member refers back to {path} (a cycle of ensemble specs)", within[-1])
        if len(within) >= MAX_ENSEMBLE_NESTING:
            raise FacelmError(f"ensemble specs nested deeper than {MAX_ENSEMBLE_NESTING} levels", within[-1])
        spec, entries = read_ensemble_spec(path)
        predictors = [load_predictor(member, within=(*within, path.resolve())) for member, _ in entries]
        return cls(predictors, [weight for _, weight in entries], bool(spec.get("hflip_tta", False)))

    def predict(self, images: Images, batch_size: int = 64, hflip_tta: bool | None = None) -> np.ndarray:
        tta = self.hflip_tta if hflip_tta is None else hflip_tta
        preds = [m.predict(images, batch_size, tta) for m in self.members]
        return np.tensordot(self.weights, np.stack(preds), axes=1).astype(np.float32)


def load_predictor(path: str | os.PathLike, device: str | None = None, within: tuple[Path, ...] = ()) -> BasePredictor:
    """A predictor for a ``.pt`` model, an ``.onnx`` export or an ensemble ``.json`` (``within``: the
    ensemble specs that name ``path``, to refuse cycles)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return OnnxPredictor(path)
    if suffix == ".json":
        return EnsemblePredictor.from_file(path, within)
    return Predictor.from_file(path, device)
