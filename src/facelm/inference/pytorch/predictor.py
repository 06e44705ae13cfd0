"""A PyTorch ``model.pt`` behind the shared predictor API (:class:`~facelm.inference.base.BasePredictor`)."""

from __future__ import annotations

import os

import numpy as np
import torch

from facelm.inference.base import BasePredictor
from facelm.models.checkpoint import load_model


class Predictor(BasePredictor):
    """A PyTorch ``model.pt`` (eager, CPU or CUDA)."""

    def __init__(self, model: torch.nn.Module, meta: dict, device: str | None = None):
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device).eval()
        self.meta = meta
        self.input_size = int(meta["input_size"])
        self.gamma = float(meta.get("gamma", 1.0))
        self.gamma_mode = meta.get("gamma_mode", "fixed")

    @classmethod
    def from_file(cls, path: str | os.PathLike, device: str | None = None) -> "Predictor":
        model, meta = load_model(path)
        return cls(model, meta, device)

    @torch.no_grad()
    def _forward(self, batch: np.ndarray) -> np.ndarray:
        return self.model(torch.from_numpy(np.ascontiguousarray(batch)).to(self.device))["landmarks"].float().cpu().numpy()
