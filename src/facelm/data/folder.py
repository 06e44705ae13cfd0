"""A challenge-format folder: JPEG crops plus an optional ``annot.pkl``.

Labelled folders list the names in ``annot.pkl`` order; unlabelled folders (the test
set) are their sorted image list. A clean index written by ``facelm check-data``
(one image name per line) restricts a folder to its valid images.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facelm.data.annot import load_annot
from facelm.data.limits import check_image_file_size, check_image_header
from facelm.errors import FacelmError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
ANNOT_NAME = "annot.pkl"


def list_images(folder: str | os.PathLike) -> list[str]:
    """Sorted image file names (not paths) in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FacelmError("not a folder", folder)
    return sorted(p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def read_index(path: str | os.PathLike) -> list[str]:
    """Image names of a clean index file (one per line, blank lines ignored)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as err:
        raise FacelmError(f"cannot read index ({err.strerror})", path) from None
    return [line.strip() for line in lines if line.strip()]


@dataclass
class FaceFolder:
    """Image names of a folder, with their landmarks when the folder is labelled."""

    root: Path
    names: list[str]
    landmarks: np.ndarray | None  # float32 (N, 68, 2) or None

    @property
    def labelled(self) -> bool:
        return self.landmarks is not None

    def __len__(self) -> int:
        return len(self.names)

    def path(self, name: str) -> Path:
        return self.root / name


def open_folder(folder: str | os.PathLike, index: str | os.PathLike | None = None) -> FaceFolder:
    """Open a challenge-format folder; ``index`` (from check-data) keeps only the names it lists.

    A folder without images (or whose ``annot.pkl`` lists none) is an error: nothing downstream
    can use it, and an empty result would pass silently."""
    root = Path(folder)
    if not root.is_dir():
        raise FacelmError("data folder not found", root)
    annot = root / ANNOT_NAME
    if annot.exists():
        names, landmarks = load_annot(annot)
    else:
        names, landmarks = list_images(root), None
    if not names:
        raise FacelmError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in the folder" if landmarks is None
                          else "annot.pkl lists no images", root if landmarks is None else annot)
    if index is not None:
        keep = set(read_index(index))
        rows = [i for i, name in enumerate(names) if name in keep]
        names = [names[i] for i in rows]
        if landmarks is not None:
            landmarks = landmarks[rows]
    return FaceFolder(root=root, names=names, landmarks=landmarks)


def imread_bgr(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to a BGR uint8 (H, W, 3) array (OpenCV's order), or raise FacelmError naming
    the file. The file's size and header are checked against :mod:`facelm.data.limits` first."""
    check_image_file_size(path)
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise FacelmError(f"cannot read image ({err.strerror})", path) from None
    check_image_header(data, path)
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    if image is None:
        raise FacelmError("not a decodable image", path)
    return image


def imread_rgb(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to an RGB uint8 (H, W, 3) array, or raise FacelmError naming the file."""
    return cv2.cvtColor(imread_bgr(path), cv2.COLOR_BGR2RGB)
