"""Loader throughput: decoding the JPEGs every epoch vs the gamma cache, per-sample vs batch augmentation.

    .venv/bin/python benchmarks/loader.py [--folder ../shared/data/300w_train] [--size 128] [--workers 2]

End-to-end paths (a DataLoader with ``--workers`` spawned workers of one thread each, batch
``--batch-size``, five timed epochs after a warm-up one), all with the default augmentation settings:

* ``jpeg``: JPEG decode + gamma + resize every epoch, albumentations per sample (the pipeline
  before the cache);
* ``jpeg_batch``: JPEG decode every epoch, then the batch augmentation's OpenCV executor
  (the default augmentation, without the cache);
* ``cache_albumentations``: the memory-mapped gamma cache, albumentations per sample
  (``augment.backend: albumentations``);
* ``cache_batch``: whole uint8 batches gathered from the cache, the batch draws applied by OpenCV
  in the workers (``augment.backend: batch`` on a CPU: the default);
* ``cache_batch_torch``: the same batches, the draws applied by the torch executor in the workers
  (what ``batch`` did on a CPU before the OpenCV executor).

``cache_batch_to_float`` is the default path again with each batch turned into float32 in the training
process (what the trainer adds on a CPU). Then, on one thread: each augmentation alone (samples/s per CPU core) and the gather alone (what the
CPU still does per sample when a GPU runs the augmentation). Prints a table and ends with one JSON line;
``speedup`` is the default path (``cache_batch``) over ``jpeg``, ``speedup_same_augment`` over
``jpeg_batch``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from facelm.config import augment_settings
from facelm.data.augment import build_augment
from facelm.data.batch_augment import build_batch_augment
from facelm.data.batch_draws import BatchAugmentBase
from facelm.data.batch_loader import BatchKeys, CacheBatches, make_batch_loader
from facelm.data.cache import build_cache
from facelm.data.dataset import FaceItems, LandmarkDataset, derive_seed, make_loader, set_loader_epoch, worker_init
from facelm.data.folder import imread_rgb, open_folder
from facelm.data.preprocess import preprocess_uint8
from facelm.errors import FacelmError

REPO = Path(__file__).resolve().parents[1]


class FolderDataset(FaceItems):
    """Samples decoded from the JPEGs on every access (the no-cache path; same items as the cache)."""

    def __init__(
        self,
        folder: str | os.PathLike,
        size: int,
        gamma: float = 1.0,
        gamma_mode: str = "fixed",
        augment: Mapping[str, Any] | None = None,
        seed: int = 0,
        index: str | os.PathLike | None = None,
    ):
        super().__init__(size, augment, seed)
        self.faces = open_folder(folder, index)
        self.gamma = float(gamma)
        self.gamma_mode = gamma_mode

    def __len__(self) -> int:
        return len(self.faces)

    def __getitem__(self, i: int) -> dict[str, Any]:
        raw = imread_rgb(self.faces.path(self.faces.names[i]))
        image = preprocess_uint8(raw[None], self.size, self.gamma, self.gamma_mode)[0]
        landmarks = None
        if self.faces.landmarks is not None:
            if raw.shape[0] != raw.shape[1]:
                raise FacelmError(f"image is {raw.shape[1]}x{raw.shape[0]}, not a square crop", self.faces.path(self.faces.names[i]))
            landmarks = self.faces.landmarks[i] * (self.size / raw.shape[1])
        return self._item(image, landmarks, i)


class FolderBatches(Dataset):
    """Batch ``key`` of an epoch decoded from the JPEGs and batch-augmented (the no-cache form of ``batch``)."""

    def __init__(self, folder: str, size: int, batch_size: int, augment: BatchAugmentBase):
        self.faces = FolderDataset(folder, size)
        self.batch_size, self.augment = batch_size, augment
        self.n_batches = len(self.faces) // batch_size

    def __len__(self) -> int:
        return self.n_batches

    def __getitem__(self, key: int) -> dict:
        epoch, b = divmod(int(key), self.n_batches)
        order = np.random.default_rng([epoch]).permutation(len(self.faces))[b * self.batch_size : (b + 1) * self.batch_size]
        items = [self.faces[int(i)] for i in order]
        images = torch.stack([item["image"] for item in items]).to(torch.uint8)
        points = torch.stack([item["landmarks"] for item in items])
        images, points = self.augment(images, points, torch.Generator().manual_seed(derive_seed(0, epoch, b)))
        return {"image": images, "landmarks": points}


def samples_per_second(loader, epochs: int, to_float: bool = False) -> float:
    """Samples/s of ``epochs`` passes over ``loader`` after a warm-up pass (starts the workers, fills the page cache),
    as the batches reach the training process (float32 from the per-sample paths, uint8 from the batch paths);
    ``to_float``: also convert each batch to float32 there, as the trainer does on a CPU (on a GPU it does that on
    the device)."""
    set_loader_epoch(loader, 0)
    for _ in loader:
        pass
    start, n = time.perf_counter(), 0
    for epoch in range(1, epochs + 1):
        set_loader_epoch(loader, epoch)
        for batch in loader:
            n += len(batch["image"].float() if to_float else batch["image"])
    return n / (time.perf_counter() - start)


def per_core(cache: Path, size: int, batch_size: int, repeats: int = 3) -> dict[str, float]:
    """Samples/s on one thread (best of ``repeats`` passes over 4 batches): each augmentation alone, and the gather."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    import cv2

    cv2.setNumThreads(1)
    data = LandmarkDataset(cache)
    n = min(len(data), 4 * batch_size)
    images, landmarks, _ = data.take(np.arange(n))
    tensors = torch.from_numpy(images).permute(0, 3, 1, 2)
    points = torch.from_numpy(landmarks / size)
    per_sample = build_augment({}, size)
    executors = {"torch": build_batch_augment({}, size, "torch"), "opencv": build_batch_augment({}, size, "opencv")}
    batches = CacheBatches([data], batch_size, True)
    order = np.random.default_rng(0).permutation(len(data))

    def albumentations():
        for k in range(n):
            per_sample(images[k], landmarks[k], seed=k)

    def batch_of(executor):
        def run():
            for k in range(0, n, batch_size):
                executors[executor](tensors[k : k + batch_size], points[k : k + batch_size], torch.Generator().manual_seed(k))
        return run

    def gather():
        for k in range(0, n, batch_size):
            batches.gather(order[k : k + batch_size])

    best = {}
    for name, run in {"albumentations": albumentations, "batch_torch": batch_of("torch"),
                      "batch_opencv": batch_of("opencv"), "gather": gather}.items():
        seconds = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            seconds = min(seconds, time.perf_counter() - start)
        best[name] = n / seconds
    torch.set_num_threads(threads)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", default=str(REPO.parent / "shared" / "data" / "300w_train"))
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs per path (after one warm-up epoch)")
    args = parser.parse_args()
    settings = augment_settings({})
    bs, workers, size = args.batch_size, args.workers, args.size
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        cache = build_cache(args.folder, Path(tmp) / "cache", 1.0, "fixed", size, progress=False)
        build_s = time.perf_counter() - started
        opencv, by_torch = build_batch_augment(settings, size, "opencv"), build_batch_augment(settings, size, "torch")
        folder_batches = FolderBatches(args.folder, size, bs, opencv)
        paths = {
            "jpeg": lambda: make_loader(FolderDataset(args.folder, size, augment=settings), bs, True, workers, drop_last=True),
            "jpeg_batch": lambda: DataLoader(folder_batches, batch_size=None, sampler=BatchKeys(len(folder_batches)),
                                             num_workers=workers, persistent_workers=True, multiprocessing_context="spawn",
                                             worker_init_fn=worker_init),
            "cache_albumentations": lambda: make_loader(LandmarkDataset(cache, augment=settings), bs, True, workers,
                                                        drop_last=True),
            "cache_batch": lambda: make_batch_loader(CacheBatches([LandmarkDataset(cache)], bs, True, drop_last=True),
                                                     opencv, workers),
            "cache_batch_torch": lambda: make_batch_loader(CacheBatches([LandmarkDataset(cache)], bs, True, drop_last=True),
                                                           by_torch, workers),
        }
        rates = {name: samples_per_second(make(), args.epochs) for name, make in paths.items()}
        rates["cache_batch_to_float"] = samples_per_second(paths["cache_batch"](), args.epochs, to_float=True)
        core = per_core(cache, size, bs)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak_children_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    default = "cache_batch" if settings.backend == "batch" else "cache_albumentations"
    print(f"{'path':<24}{'samples/s':>11}{'vs jpeg':>9}")
    for name, rate in rates.items():
        print(f"{name:<24}{rate:>11.0f}{rate / rates['jpeg']:>8.2f}x" + ("  <- default" if name == default else ""))
    print("one core: " + ", ".join(f"{k} {v:.0f} samples/s" for k, v in core.items()))
    print(f"cache build: {build_s:.1f} s; peak RSS main {peak_mb:.0f} MB, largest worker {peak_children_mb:.0f} MB")
    print(json.dumps({**{f"{k}_sps": round(v, 1) for k, v in rates.items()},
                      "speedup": round(rates[default] / rates["jpeg"], 2), "default_backend": settings.backend,
                      "speedup_same_augment": round(rates[default] / rates["jpeg_batch"], 2),
                      **{f"per_core_{k}_sps": round(v, 1) for k, v in core.items()},
                      "size": size, "workers": workers, "batch_size": bs,
                      "peak_rss_mb": round(peak_mb), "cache_build_s": round(build_s, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
