"""The public prediction API: a model file in, landmarks in the input image's frame out.

    predictor = load_predictor("model.pt")          # or .onnx, or an ensemble .json
    points = predictor.predict(images)              # uint8 RGB (N, H, W, 3) -> (N, 68, 2)

Batched end to end: images are preprocessed as one batch per input size (gamma at full
resolution, INTER_AREA resize -- exactly the training cache) and run through the network in
``batch_size`` chunks. Points come back as ``x * W / S, y * H / S``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from tqdm import tqdm

from facelm.checkpoint import load_model
from facelm.errors import FacelmError
from facelm.folder import imread_rgb, open_folder
from facelm.landmarks68 import flip_horizontal
from facelm.preprocess import preprocess_images

Images = np.ndarray | Sequence[np.ndarray]


def _shapes(images: Images) -> np.ndarray:
    return np.array([img.shape[:2] for img in images], np.float32)  # (N, 2) H, W


class BasePredictor:
    """Shared batching, frame mapping and flip TTA; subclasses run ``_forward`` on model inputs."""

    input_size: int
    gamma: float
    gamma_mode: str

    def _forward(self, batch: np.ndarray) -> np.ndarray:  # float32 (B,3,S,S) -> normalised (B,68,2)
        raise NotImplementedError

    def predict_normalised(self, inputs: np.ndarray, batch_size: int = 64, hflip_tta: bool = False) -> np.ndarray:
        """Model inputs (N, 3, S, S) float 0..255 -> normalised points (N, 68, 2)."""
        chunks = [self._forward(inputs[i : i + batch_size]) for i in range(0, len(inputs), batch_size)]
        points = np.concatenate(chunks) if chunks else np.zeros((0, 68, 2), np.float32)
        if hflip_tta:
            mirrored = np.ascontiguousarray(inputs[..., ::-1])
            flipped = np.concatenate([self._forward(mirrored[i : i + batch_size]) for i in range(0, len(inputs), batch_size)])
            points = (points + flip_horizontal(flipped, 1.0)) / 2
        return points.astype(np.float32)

    def predict(self, images: Images, batch_size: int = 64, hflip_tta: bool = False) -> np.ndarray:
        """uint8 RGB images (N, H, W, 3) (or a list, sizes may differ) -> (N, 68, 2) in each image's frame."""
        if len(images) == 0:
            return np.zeros((0, 68, 2), np.float32)
        inputs = preprocess_images(images, self.input_size, self.gamma, self.gamma_mode)
        points = self.predict_normalised(inputs, batch_size, hflip_tta)
        hw = _shapes(images)
        return points * hw[:, None, ::-1]


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
        path = Path(path)
        try:
            spec = json.loads(path.read_text())
            members = spec["members"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise FacelmError(f"not an ensemble spec ({type(err).__name__}: {err})", path) from None
        predictors = [load_predictor(_member_path(path, m["model"])) for m in members]
        return cls(predictors, [m["weight"] for m in members], bool(spec.get("hflip_tta", False)))

    def predict(self, images: Images, batch_size: int = 64, hflip_tta: bool | None = None) -> np.ndarray:
        tta = self.hflip_tta if hflip_tta is None else hflip_tta
        preds = [m.predict(images, batch_size, tta) for m in self.members]
        return np.tensordot(self.weights, np.stack(preds), axes=1).astype(np.float32)


def _member_path(spec_path: Path, member: str) -> Path:
    member_path = Path(member)
    return member_path if member_path.is_absolute() or member_path.exists() else spec_path.parent / member_path


def load_predictor(path: str | os.PathLike, device: str | None = None) -> BasePredictor:
    """A predictor for a ``.pt`` model, an ``.onnx`` export or an ensemble ``.json``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        from facelm.onnx_predictor import OnnxPredictor

        return OnnxPredictor(path)
    if suffix == ".json":
        return EnsemblePredictor.from_file(path)
    return Predictor.from_file(path, device)


def iter_folder_batches(folder, names: list[str], batch_size: int) -> Iterator[tuple[list[str], list[np.ndarray]]]:
    for start in range(0, len(names), batch_size):
        chunk = names[start : start + batch_size]
        yield chunk, [imread_rgb(Path(folder) / name) for name in chunk]


def predict_folder(predictor: BasePredictor, folder: str | os.PathLike, batch_size: int = 64,
                   hflip_tta: bool | None = None, index: str | os.PathLike | None = None) -> tuple[list[str], np.ndarray]:
    """Stream a challenge-format folder through ``predictor`` in batches -> (names, (N, 68, 2))."""
    faces = open_folder(folder, index)
    out = []
    kwargs = {} if hflip_tta is None else {"hflip_tta": hflip_tta}
    for _, images in tqdm(iter_folder_batches(folder, faces.names, batch_size), total=-(-len(faces) // batch_size),
                          desc=f"predict {Path(folder).name}", disable=None, leave=False):
        out.append(predictor.predict(images, batch_size, **kwargs))
    return faces.names, (np.concatenate(out) if out else np.zeros((0, 68, 2), np.float32))
