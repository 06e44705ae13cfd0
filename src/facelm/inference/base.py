"""The predictor interface every model kind shares: batching, the frame mapping and flip TTA.

    points = predictor.predict(images)              # uint8 RGB (N, H, W, 3) -> (N, 68, 2)

Batched end to end: images are preprocessed as one batch per input size (gamma at full
resolution, INTER_AREA resize -- exactly the training cache) and run through the network in
``batch_size`` chunks. Points come back as ``x * W / S, y * H / S``. Subclasses
(:mod:`facelm.inference.pytorch.predictor` for PyTorch, :mod:`facelm.inference.onnx_predictor` for
onnxruntime) only run the network; :func:`facelm.inference.loading.load_predictor` picks one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from tqdm import tqdm

from facelm.data.folder import imread_rgb, open_folder
from facelm.data.preprocess import preprocess_images
from facelm.errors import FacelmError
from facelm.landmarks68 import flip_horizontal

Images = np.ndarray | Sequence[np.ndarray]


def _shapes(images: Images) -> np.ndarray:
    return np.array([img.shape[:2] for img in images], np.float32)  # (N, 2) H, W


class BasePredictor:
    """Shared batching, frame mapping and flip TTA; subclasses run ``_forward`` on model inputs.

    ``hflip_tta`` is the predictor's own flip-TTA default (what :meth:`predict` does when not told):
    an ONNX export's card or an ensemble spec sets it, so whoever reports a measurement (the model
    card, ``facelm ship``) reads what was actually run from here."""

    input_size: int
    gamma: float
    gamma_mode: str
    hflip_tta: bool = False

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

    def predict(self, images: Images, batch_size: int = 64, hflip_tta: bool | None = None) -> np.ndarray:
        """uint8 RGB face crops (N, S, S, 3) (or a list, sizes may differ) -> (N, 68, 2) in each crop's frame.
        ``hflip_tta`` None: the predictor's own :attr:`hflip_tta`.

        A crop is square and framed like the training crops (:mod:`facelm.inference.framing`); a
        photo that is not square is refused rather than squashed (use :class:`facelm.Landmarker`).
        """
        if len(images) == 0:
            return np.zeros((0, 68, 2), np.float32)
        oblong = [i for i, image in enumerate(images) if np.ndim(image) == 3 and image.shape[0] != image.shape[1]]
        if oblong:
            h, w = images[oblong[0]].shape[:2]
            raise FacelmError(f"image {oblong[0]} is {w}x{h}: a predictor takes square face crops framed like the "
                              "training crops; for photos use facelm.Landmarker (it detects the faces)")
        inputs = preprocess_images(images, self.input_size, self.gamma, self.gamma_mode)
        points = self.predict_normalised(inputs, batch_size, self.hflip_tta if hflip_tta is None else hflip_tta)
        hw = _shapes(images)
        return points * hw[:, None, ::-1]


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
