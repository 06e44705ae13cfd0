"""A model file in, a predictor out.

    predictor = load_predictor("model.pt")          # or .onnx, or an ensemble .json
    points = predictor.predict(crops)               # uint8 RGB face crops (N, S, S, 3) -> (N, 68, 2)

The one place that knows every predictor kind, so the kinds never import each other. PyTorch
(``.pt`` and ensembles) is imported only when such a file is loaded: an ``.onnx`` needs
onnxruntime alone (the inference-only install). For whole photos use :class:`facelm.Landmarker`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from facelm.errors import FacelmError
from facelm.inference.base import BasePredictor, Images
from facelm.inference.onnx_predictor import OnnxPredictor
from facelm.json_input import read_json

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
    def from_file(cls, path: str | os.PathLike, within: tuple[Path, ...] = (), device: str | None = None,
                  threads: int | None = None) -> "EnsemblePredictor":
        """Load an ensemble spec; ``within``: the specs that name this one (a member spec may be an ensemble)."""
        from facelm.models.checkpoint import read_ensemble_spec

        path = Path(path)
        if path.resolve() in within:
            raise FacelmError(f"a member refers back to {path} (a cycle of ensemble specs)", within[-1])
        if len(within) >= MAX_ENSEMBLE_NESTING:
            raise FacelmError(f"ensemble specs nested deeper than {MAX_ENSEMBLE_NESTING} levels", within[-1])
        _refuse_old_onnx_card(path)
        spec, entries = read_ensemble_spec(path)
        predictors = [load_predictor(member, device, threads, within=(*within, path.resolve()))
                      for member, _ in entries]
        return cls(predictors, [weight for _, weight in entries], bool(spec.get("hflip_tta", False)))

    def predict(self, images: Images, batch_size: int = 64, hflip_tta: bool | None = None) -> np.ndarray:
        tta = self.hflip_tta if hflip_tta is None else hflip_tta
        preds = [m.predict(images, batch_size, tta) for m in self.members]
        return np.tensordot(self.weights, np.stack(preds), axes=1).astype(np.float32)


def _refuse_old_onnx_card(path: Path) -> None:
    """A ``.json`` that is an older export's model card (beside its ``.onnx``) is not an ensemble spec: say so."""
    try:
        card = read_json(path, "ensemble spec")
    except FacelmError:
        return  # the ensemble reader reports it
    if isinstance(card, dict) and str(card.get("format", "")).startswith("facelm-onnx"):
        raise FacelmError(f"this is the model card of an ONNX export, not an ensemble spec; pass the model itself "
                          f"({path.with_suffix('.onnx').name})", path)


def load_predictor(path: str | os.PathLike, device: str | None = None, threads: int | None = None,
                   within: tuple[Path, ...] = ()) -> BasePredictor:
    """A predictor for a ``.pt`` model, an ``.onnx`` export or an ensemble ``.json``.

    ``device``: ``cpu`` or ``cuda`` (default: cuda for PyTorch models when available, cpu for ONNX);
    ``threads``: CPU threads (onnxruntime intra-op threads; torch's thread count for PyTorch models);
    ``within``: the ensemble specs that name ``path``, to refuse cycles.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return OnnxPredictor(path, threads, device or "cpu")
    if threads is not None:
        import torch

        torch.set_num_threads(int(threads))
    if suffix == ".json":
        return EnsemblePredictor.from_file(path, within, device, threads)
    from facelm.inference.pytorch.predictor import Predictor

    return Predictor.from_file(path, device)
