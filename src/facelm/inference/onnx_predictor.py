"""Predict with an exported ``.onnx`` (onnxruntime) through the shared predictor API.

Batching, preprocessing (gamma at full resolution, INTER_AREA resize), flip TTA and the
mapping back to each image's frame come from :class:`facelm.inference.base.BasePredictor`; this
class only runs the graph. Input size and gamma come from the model card that ``facelm export``
stores in the file's metadata_props (one key per field, JSON values); files exported before
that keep it in a sidecar ``face.json`` beside ``face.onnx``, which is still read. Needs only
onnxruntime (no torch, no ``onnx`` package).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from facelm.errors import FacelmError
from facelm.json_input import MAX_JSON_DEPTH, nesting_depth_over, read_json
from facelm.inference.base import BasePredictor

#: the card format ``facelm export`` writes into the metadata (``facelm-onnx-1``: sidecar JSON)
CARD_FORMAT = "facelm-onnx-2"
#: onnxruntime execution provider per ``device``
PROVIDERS = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}


def _session(path: Path, threads: int | None = None, device: str = "cpu"):
    import onnxruntime as ort

    if device not in PROVIDERS:
        raise FacelmError(f"unknown device {device!r} (choose from {', '.join(PROVIDERS)})")
    if device == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
        raise FacelmError("device 'cuda' needs onnxruntime-gpu (pip install onnxruntime-gpu); "
                          f"this onnxruntime has {', '.join(ort.get_available_providers())}")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if threads is not None:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    if not path.is_file():
        raise FacelmError("model file not found", path)
    try:
        return ort.InferenceSession(str(path), options, providers=PROVIDERS[device])
    except Exception as err:  # onnxruntime raises its own (non-exported) exception types for bad files
        raise FacelmError(f"not an ONNX model ({type(err).__name__}: {str(err).splitlines()[0][:160]})", path) from None


def _card_of(session, path: Path) -> dict:
    """The model card in the file's metadata, else in the old sidecar ``.json``; checked for input_size."""
    found = session.get_modelmeta().custom_metadata_map
    if "input_size" in found:
        try:
            card = {key: json.loads(value) for key, value in found.items()}
        except (RecursionError, ValueError):
            card = None
        if card is None or nesting_depth_over(card, MAX_JSON_DEPTH):
            raise FacelmError("the model card in the ONNX metadata is not valid JSON; re-export with "
                              "`facelm export`", path)
    else:
        sidecar = path.with_suffix(".json")
        if not sidecar.is_file():
            raise FacelmError(f"no facelm model card in the ONNX metadata, and no sidecar card {sidecar.name} "
                              f"of an older export; re-export with `facelm export`", path)
        try:
            card = read_json(sidecar, "model card")
        except FacelmError as err:
            raise FacelmError(f"{err}; re-export with `facelm export`") from None
        if not isinstance(card, dict):
            raise FacelmError("not a model card (a JSON object); re-export with `facelm export`", sidecar)
    try:
        int(card["input_size"]), float(card.get("gamma", 1.0))
    except (KeyError, TypeError, ValueError):
        raise FacelmError("the model card has no valid input_size / gamma; re-export with `facelm export`", path) from None
    return card


def read_onnx_card(path: str | os.PathLike) -> dict:
    """The facelm model card of an ONNX file (metadata, or an older export's sidecar ``.json``)."""
    path = Path(path)
    return _card_of(_session(path, threads=1), path)


def model_id(path: str | os.PathLike, card: dict | None = None) -> str:
    """``NAME@SHA12``: the card's name (else the file stem) and the first 12 hex digits of the file's SHA-256."""
    path = Path(path)
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"{(card or {}).get('name') or path.stem}@{digest.hexdigest()[:12]}"


class OnnxPredictor(BasePredictor):
    """``OnnxPredictor("face.onnx", threads=1).predict(images) -> (N, 68, 2)`` in the image frame.

    ``threads``: onnxruntime intra-op threads (None = onnxruntime's default, all cores);
    ``device``: ``cpu`` or ``cuda`` (needs onnxruntime-gpu). Its :attr:`hflip_tta` is the card's
    value (an exported ensemble keeps its spec's flag).
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None, device: str = "cpu"):
        path = Path(path)
        self.session = _session(path, threads, device)
        card = _card_of(self.session, path)
        self.input_size = int(card["input_size"])
        self.gamma = float(card.get("gamma", 1.0))
        self.gamma_mode = str(card.get("gamma_mode", "fixed"))
        self.card = card
        self.meta = card
        self.hflip_tta = bool(card.get("hflip_tta", False))
        self.input_name = self.session.get_inputs()[0].name
        self.path = path
        self.model_id = model_id(path, card)

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)})[0]
