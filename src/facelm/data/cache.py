"""The gamma-corrected, resized image cache of a challenge folder (``facelm cache``).

Decoding 384x384 JPEGs every epoch dominates a small model's training time on CPU, so
each folder is decoded once per (gamma, gamma mode, size): the gamma table is applied at
full resolution, the image is resized to S x S with ``cv2.INTER_AREA`` (exactly
:func:`facelm.data.preprocess.preprocess_uint8`) and stored in ``images.npy`` (N, S, S, 3)
uint8, which training reads a batch of rows at a time (:class:`ImageRows`). Landmarks are scaled into the S-px frame
(``x * S / source_size``) and stored in ``landmarks.npy`` (absent for unlabelled folders).
``meta.json`` records the names in order, the parameters and a hash of the inputs, which
:func:`cache_is_fresh` compares to decide whether a rebuild is needed.

The array is written as a stream (the ``.npy`` header, then chunk after chunk of rows) and read
with positioned reads of just the rows asked for, never through a memory map: a mapped file's
pages count in a process's resident memory, so a map of a 100,000-image cache (4.7 GB at 128 px)
would grow a training process and each of its DataLoader workers towards the size of the whole
cache; with reads, what a process holds stays the same for any N (the kernel's page cache still
keeps the file's hot pages, outside every process). The folder is written inside a temporary
folder renamed into place at the end (:func:`facelm.atomic.atomic_dir`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from facelm.atomic import atomic_dir, write_json
from facelm.errors import FacelmError
from facelm.layout import cache_name
from facelm.json_input import read_json
from facelm.data.folder import ANNOT_NAME, imread_rgb, open_folder
from facelm.data.gamma import GAMMA_MODES
from facelm.data.limits import positive_int
from facelm.data.preprocess import preprocess_uint8

CACHE_FORMAT = "facelm-cache-1"
IMAGES_FILE = "images.npy"
LANDMARKS_FILE = "landmarks.npy"
META_FILE = "meta.json"
#: Images decoded per worker task (bounds the memory held in flight: ~64 x 384 x 384 x 3 bytes).
CHUNK = 64


def _check_params(gamma: float, gamma_mode: str, size: int) -> None:
    if gamma_mode not in GAMMA_MODES:
        raise FacelmError(f"unknown gamma mode {gamma_mode!r} (expected one of {', '.join(GAMMA_MODES)})")
    if not float(gamma) > 0:
        raise FacelmError(f"gamma must be positive, got {gamma}")
    if int(size) < 1:
        raise FacelmError(f"size must be positive, got {size}")


def labels_hash(folder: str | os.PathLike, index: str | os.PathLike | None = None) -> str:
    """SHA-256 of what decides a folder's names and labels: its annot.pkl and the index (read in blocks)."""
    digest = hashlib.sha256()
    for path in (Path(folder) / ANNOT_NAME, Path(index) if index is not None else None):
        if path is None or not path.exists():
            digest.update(b"-none-")
            continue
        try:
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        except OSError as err:
            raise FacelmError(f"cannot read {path.name} ({err.strerror})", path) from None
        digest.update(b"\0")
    return digest.hexdigest()


def input_hash(
    folder: str | os.PathLike,
    gamma: float,
    gamma_mode: str,
    size: int,
    index: str | os.PathLike | None = None,
    names: list[str] | None = None,
) -> str:
    """SHA-256 over what a cache is made of: names, image sizes + mtimes, annot.pkl, index, params.

    ``names``: the folder's (index-filtered) names when already known (a fresh cache's meta.json, when
    :func:`labels_hash` shows annot.pkl and the index unchanged), which spares unpickling annot.pkl."""
    root = Path(folder)
    if names is None:
        names = open_folder(root, index).names
    digest = hashlib.sha256()
    digest.update(json.dumps([CACHE_FORMAT, float(gamma), gamma_mode, int(size)]).encode())
    for name in names:
        try:
            st = os.stat(root / name)
        except OSError as err:
            raise FacelmError(f"cannot read image ({err.strerror})", root / name) from None
        digest.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    digest.update(labels_hash(root, index).encode())
    return digest.hexdigest()


def _decode_chunk(task: tuple[Path, list[str], float, str, int]) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    """Worker: decode a chunk of images (RGB) and preprocess them; also return their source shapes."""
    root, names, gamma, gamma_mode, size = task
    images = [imread_rgb(root / name) for name in names]
    return preprocess_uint8(images, size, gamma, gamma_mode), [img.shape for img in images]


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # the pool provides the parallelism


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())


def build_cache(
    folder: str | os.PathLike,
    out_dir: str | os.PathLike,
    gamma: float = 1.0,
    gamma_mode: str = "fixed",
    size: int = 128,
    index: str | os.PathLike | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Build the cache of ``folder`` in ``out_dir`` (replacing it atomically); returns ``out_dir``.

    ``workers`` decoding processes (default: up to 2, the machine's cores); 0 or 1 decodes in
    this process. All images must share one source size, else a one-line error names the
    first image that differs.
    """
    _check_params(gamma, gamma_mode, size)
    root, out_dir, size = Path(folder), Path(out_dir), int(size)
    faces = open_folder(root, index)
    if not faces.names:
        raise FacelmError("no images to cache", root if index is None else index)
    digest = input_hash(root, gamma, gamma_mode, size, index)
    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    tasks = [(root, faces.names[i : i + CHUNK], float(gamma), gamma_mode, size) for i in range(0, len(faces), CHUNK)]
    source_shape: tuple[int, ...] | None = None
    with atomic_dir(out_dir) as tmp, open(tmp / IMAGES_FILE, "wb") as images:
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False,
                  "shape": (len(faces), size, size, 3)}
        np.lib.format.write_array_header_2_0(images, header)
        pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker) if workers > 1 else None
        try:
            results = pool.imap(_decode_chunk, tasks) if pool else map(_decode_chunk, tasks)
            bar = tqdm(total=len(faces), desc=f"cache {root.name}", unit="img", disable=None if progress else True)
            start = 0
            for chunk, shapes in results:
                source_shape = source_shape or shapes[0]
                odd = [i for i, shape in enumerate(shapes) if shape != source_shape]
                if odd:
                    name = faces.names[start + odd[0]]
                    raise FacelmError(
                        f"image is {shapes[odd[0]][1]}x{shapes[odd[0]][0]} but the folder's images are "
                        f"{source_shape[1]}x{source_shape[0]}; a cache needs one source size",
                        root / name,
                    )
                images.write(np.ascontiguousarray(chunk, np.uint8).tobytes())
                start += len(chunk)
                bar.update(len(chunk))
            bar.close()
        finally:
            if pool:
                pool.terminate()
        images.close()
        if source_shape[0] != source_shape[1]:
            raise FacelmError(f"images are {source_shape[1]}x{source_shape[0]}, not square crops", root)
        source_size = int(source_shape[0])
        if faces.landmarks is not None:
            np.save(tmp / LANDMARKS_FILE, (faces.landmarks * (size / source_size)).astype(np.float32))
        meta = {
            "format": CACHE_FORMAT,
            "source": str(root.resolve()),
            "index": str(Path(index).resolve()) if index is not None else None,
            "gamma": float(gamma),
            "gamma_mode": gamma_mode,
            "size": size,
            "source_size": source_size,
            "count": len(faces),
            "labelled": faces.landmarks is not None,
            "input_hash": digest,
            "labels_hash": labels_hash(root, index) if faces.landmarks is not None else None,
            "names": faces.names,
        }
        write_json(tmp / META_FILE, meta)
        disk = _dir_bytes(tmp)
    print(f"cache {out_dir}: {len(faces)} images {size}x{size} from {source_size}px, {disk / 2**20:.1f} MiB on disk")
    return out_dir


def cache_is_fresh(
    folder: str | os.PathLike,
    out_dir: str | os.PathLike,
    gamma: float,
    gamma_mode: str,
    size: int,
    index: str | os.PathLike | None = None,
) -> bool:
    """True when ``out_dir`` holds a complete cache built from the current inputs and parameters."""
    out_dir = Path(out_dir)
    meta_path = out_dir / META_FILE
    if not (meta_path.is_file() and (out_dir / IMAGES_FILE).is_file()):
        return False
    try:
        meta = read_json(meta_path, "cache metadata")
    except (FacelmError, OSError):
        return False
    if not isinstance(meta, dict):
        return False
    known = meta.get("labels_hash")
    names = meta.get("names") if known and known == labels_hash(folder, index) else None
    return meta.get("input_hash") == input_hash(folder, gamma, gamma_mode, size, index, names)


def ensure_cache(
    folder: str | os.PathLike,
    cache_root: str | os.PathLike,
    gamma: float,
    gamma_mode: str,
    size: int,
    index: str | os.PathLike | None = None,
    workers: int | None = None,
) -> Path:
    """``cache_root / g<gamma>_<mode>_s<size>`` (:func:`facelm.layout.cache_name`), built only when missing or stale."""
    _check_params(gamma, gamma_mode, size)
    out = Path(cache_root) / cache_name(float(gamma), gamma_mode, int(size))
    if not cache_is_fresh(folder, out, gamma, gamma_mode, size, index):
        build_cache(folder, out, gamma, gamma_mode, size, index, workers)
    return out


class ImageRows:
    """Rows of a cache's ``images.npy`` by positioned reads (``os.preadv`` into the result), without a map.

    Picklable (a DataLoader worker reopens the file on first use); ``rows[i]``, ``rows[a:b]`` and
    ``rows[index_array]`` return fresh uint8 arrays, like the memory map they replace.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            with open(self.path, "rb") as handle:
                major, _ = np.lib.format.read_magic(handle)
                read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
                shape, fortran, dtype = read_header(handle)
                self.offset = handle.tell()
        except (OSError, ValueError) as err:
            raise FacelmError(f"cannot open cache images ({err})", self.path) from None
        if len(shape) != 4 or fortran or dtype != np.uint8:
            raise FacelmError(f"images have shape {shape} {dtype}, expected uint8 (N, S, S, 3)", self.path)
        self.shape, self.dtype = tuple(shape), np.dtype(np.uint8)
        self.row_bytes = int(np.prod(shape[1:]))
        self._fd: int | None = None

    def __len__(self) -> int:
        return self.shape[0]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fd": None}

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, slice):
            rows = np.arange(len(self))[key]
        else:
            rows = np.asarray(key, dtype=np.int64)
        out = np.empty((*rows.shape, *self.shape[1:]), np.uint8)
        flat = rows.reshape(-1)
        if flat.size and (flat.min() < 0 or flat.max() >= len(self)):
            raise IndexError(f"row out of range for {len(self)} images")
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        views = out.reshape(len(flat), self.row_bytes)
        start = 0
        while start < len(flat):  # one read per run of consecutive rows
            end = start + 1
            while end < len(flat) and flat[end] == flat[end - 1] + 1:
                end += 1
            buffer = memoryview(views[start:end]).cast("B")
            position, done = self.offset + int(flat[start]) * self.row_bytes, 0
            while done < len(buffer):
                got = os.preadv(self._fd, [buffer[done:]], position + done)
                if got <= 0:
                    raise FacelmError("cache images end early (truncated file)", self.path)
                done += got
            start = end
        return out


@dataclass
class Cache:
    """An opened cache: its image rows (read on demand) and (when labelled) landmarks in the S-px frame."""

    path: Path
    images: ImageRows  # uint8 (N, S, S, 3), read by rows
    landmarks: np.ndarray | None  # float32 (N, 68, 2), S-px frame
    names: list[str]
    meta: dict[str, Any]

    @property
    def size(self) -> int:
        return int(self.meta["size"])

    @property
    def source_size(self) -> int:
        return int(self.meta["source_size"])

    def __len__(self) -> int:
        return len(self.names)


def open_cache(path: str | os.PathLike) -> Cache:
    """Open a cache folder written by :func:`build_cache` (images read by rows on demand)."""
    path = Path(path)
    meta_path = path / META_FILE
    if not meta_path.is_file():
        raise FacelmError(f"not a facelm cache ({META_FILE} missing)", path)
    meta = read_json(meta_path, "cache metadata")
    if not isinstance(meta, dict) or meta.get("format") != CACHE_FORMAT:
        raise FacelmError(f"not a {CACHE_FORMAT} cache", meta_path)
    images = ImageRows(path / IMAGES_FILE)
    names, size = meta["names"], int(meta["size"])
    if images.shape != (len(names), size, size, 3):
        raise FacelmError(f"images have shape {images.shape}, meta.json says {len(names)}x{size}x{size}x3", path / IMAGES_FILE)
    expected = images.offset + len(names) * images.row_bytes
    if (path / IMAGES_FILE).stat().st_size < expected:
        raise FacelmError("cache images are truncated; rebuild the cache", path / IMAGES_FILE)
    landmarks = None
    if (path / LANDMARKS_FILE).is_file():
        landmarks = np.load(path / LANDMARKS_FILE)
        if landmarks.shape != (len(names), 68, 2):
            raise FacelmError(f"landmarks have shape {landmarks.shape}, expected ({len(names)}, 68, 2)", path / LANDMARKS_FILE)
    return Cache(path=path, images=images, landmarks=landmarks, names=list(names), meta=meta)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", help="challenge-format folder (JPEGs + optional annot.pkl)")
    parser.add_argument("out", help="cache folder to write (replaced atomically)")
    parser.add_argument("--gamma", type=float, default=1.0, help="O = I^(1/G) at full resolution (1.0 = off)")
    parser.add_argument("--size", type=positive_int, required=True, help="side S of the cached S x S images")
    parser.add_argument("--gamma-mode", choices=GAMMA_MODES, default="fixed", help="fixed G, or per-image G (auto)")
    parser.add_argument("--index", help="clean index from check-data: cache only the names it lists")
    parser.add_argument("--workers", type=int, default=None, help="decoding processes (default: up to 2)")
    parser.add_argument("--force", action="store_true", help="rebuild even when the cache is up to date")


def main(args: argparse.Namespace) -> int:
    if not args.force and cache_is_fresh(args.folder, args.out, args.gamma, args.gamma_mode, args.size, args.index):
        print(f"cache {args.out}: up to date ({_dir_bytes(Path(args.out)) / 2**20:.1f} MiB on disk)")
        return 0
    build_cache(args.folder, args.out, args.gamma, args.gamma_mode, args.size, args.index, args.workers)
    return 0
