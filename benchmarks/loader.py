"""Loader throughput: decoding the JPEGs every epoch vs the gamma cache, per-sample vs batch augmentation.

    .venv/bin/python benchmarks/loader.py [--folder ../shared/data/300w_train] [--size 128] [--workers 2]

Paths, all with the same (default) augmentation settings and batch size:
  * JPEG decode every epoch, albumentations per sample in ``--workers`` DataLoader workers;
  * gamma cache (memmap), albumentations per sample in the workers (``augment.backend: albumentations``);
  * gamma cache read as whole uint8 batches (:class:`CacheBatches`) and augmented as batches of
    tensors (``augment.backend: batch``): (a) in ``--workers`` worker processes of one thread each,
    what the trainer does without a GPU, and (b) in the training process on ONE CPU thread, what the
    trainer does on a GPU, there on the device (on a shared 2-core machine a 2-thread OpenMP pool
    stalls on every op, so one thread).
Then each augmentation alone on one thread (samples/s per CPU core).

Prints a table and ends with one JSON line; ``speedup`` is the end-to-end gain of the cache with
the DEFAULT backend over the JPEG path (``speedup_<backend>`` for each backend).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from facelm.config import augment_settings
from facelm.data.augment import build_augment
from facelm.data.batch_augment import build_batch_augment
from facelm.data.batch_loader import CacheBatches, make_batch_loader
from facelm.data.cache import build_cache
from facelm.data.dataset import FolderDataset, LandmarkDataset, make_loader, set_loader_epoch

REPO = Path(__file__).resolve().parents[1]


def samples_per_second(loader, epochs: int, step=lambda batch: batch) -> float:
    set_loader_epoch(loader, 0)
    for batch in loader:  # warm-up epoch: starts the workers, fills the page cache
        step(batch)
    start, n = time.perf_counter(), 0
    for epoch in range(1, epochs + 1):
        set_loader_epoch(loader, epoch)
        for batch in loader:
            n += len(step(batch)["image"])
    return n / (time.perf_counter() - start)


def per_core(cache: Path, size: int, batch_size: int, repeats: int = 3) -> tuple[float, float]:
    """Samples/s of each augmentation alone on one thread (best of ``repeats`` passes over 4 batches)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    import cv2

    cv2.setNumThreads(1)
    data = LandmarkDataset(cache)
    images, landmarks, _ = data.take(np.arange(min(len(data), 4 * batch_size)))
    per_sample, batch = build_augment({}, size), build_batch_augment({}, size)
    tensors = torch.from_numpy(images).permute(0, 3, 1, 2)
    points = torch.from_numpy(landmarks / size)
    best_sample = best_batch = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for k in range(len(images)):
            per_sample(images[k], landmarks[k], seed=k)
        best_sample = min(best_sample, time.perf_counter() - start)
        start = time.perf_counter()
        for k in range(0, len(images), batch_size):
            batch(tensors[k : k + batch_size], points[k : k + batch_size], torch.Generator().manual_seed(k))
        best_batch = min(best_batch, time.perf_counter() - start)
    torch.set_num_threads(threads)
    return len(images) / best_sample, len(images) / best_batch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", default=str(REPO.parent / "shared" / "data" / "300w_train"))
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--no-augment", action="store_true", help="measure pure loading")
    args = parser.parse_args()
    settings = augment_settings({})
    augment = None if args.no_augment else settings
    bs, workers = args.batch_size, args.workers
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        cache = build_cache(args.folder, Path(tmp) / "cache", 1.0, "fixed", args.size, progress=False)
        build_s = time.perf_counter() - started
        jpeg = samples_per_second(make_loader(FolderDataset(args.folder, args.size, augment=augment), bs, True, workers),
                                  args.epochs)
        cached = samples_per_second(make_loader(LandmarkDataset(cache, augment=augment), bs, True, workers), args.epochs)
        on_device = build_batch_augment(settings, args.size)
        draws = torch.Generator().manual_seed(0)

        def batch_step(batch):
            images = batch["image"].float()
            if augment is not None:
                images, batch["landmarks"] = on_device(images, batch["landmarks"], draws)
            return {**batch, "image": images}

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        batched = samples_per_second(CacheBatches([LandmarkDataset(cache)], bs, True), args.epochs, batch_step)
        torch.set_num_threads(threads)
        in_workers = samples_per_second(make_batch_loader(CacheBatches([LandmarkDataset(cache)], bs, True),
                                                          on_device if augment is not None else None, workers),
                                        args.epochs)
        core_sample, core_batch = per_core(cache, args.size, bs) if augment is not None else (None, None)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak_children_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    ends = {"albumentations": cached, "batch": in_workers}
    print(f"{'path':<52}{'samples/s':>12}")
    print(f"{'JPEG decode every epoch, per-sample augment':<52}{jpeg:>12.0f}")
    print(f"{'gamma cache (memmap), per-sample augment':<52}{cached:>12.0f}")
    print(f"{'gamma cache batches, batch augment in the workers':<52}{in_workers:>12.0f}")
    print(f"{'gamma cache batches, batch augment (1 CPU thread)':<52}{batched:>12.0f}")
    if core_sample:
        print(f"augmentation alone, one core: albumentations {core_sample:.0f} samples/s, batch {core_batch:.0f} samples/s")
    print(f"cache build: {build_s:.1f} s; peak RSS main {peak_mb:.0f} MB, largest worker {peak_children_mb:.0f} MB")
    print(json.dumps({"jpeg_sps": round(jpeg, 1), "cache_sps": round(cached, 1), "batch_workers_sps": round(in_workers, 1),
                      "batch_1thread_sps": round(batched, 1),
                      "speedup": round(ends[settings.backend] / jpeg, 2), "default_backend": settings.backend,
                      **{f"speedup_{k}": round(v / jpeg, 2) for k, v in ends.items()},
                      "per_core_albumentations_sps": core_sample and round(core_sample, 1),
                      "per_core_batch_sps": core_batch and round(core_batch, 1),
                      "size": args.size, "workers": workers, "augment": augment is not None,
                      "peak_rss_mb": round(peak_mb), "cache_build_s": round(build_s, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
