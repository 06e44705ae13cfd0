"""Loader throughput: decoding the JPEGs every epoch vs the gamma cache, same augmentation and workers.

    .venv/bin/python benchmarks/loader.py [--folder ../shared/data/300w_train] [--size 128] [--workers 2]

Prints a table and ends with one JSON line {"jpeg_sps", "cache_sps", "speedup", ...}.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from facelm.data.cache import build_cache
from facelm.config import schema
from facelm.data.dataset import FolderDataset, LandmarkDataset, make_loader, set_loader_epoch

REPO = Path(__file__).resolve().parents[1]


def samples_per_second(dataset, batch_size: int, workers: int, epochs: int) -> float:
    loader = make_loader(dataset, batch_size, True, workers, seed=0)
    set_loader_epoch(loader, 0)
    for _ in loader:  # warm-up epoch: starts the workers, fills the page cache
        pass
    start, n = time.perf_counter(), 0
    for epoch in range(1, epochs + 1):
        set_loader_epoch(loader, epoch)
        for batch in loader:
            n += len(batch["image"])
    return n / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", default=str(REPO.parent / "shared" / "data" / "300w_train"))
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--no-augment", action="store_true", help="measure pure loading")
    args = parser.parse_args()
    augment = None if args.no_augment else {k: v["default"] for k, v in schema()["properties"]["augment"]["properties"].items()}
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        cache = build_cache(args.folder, Path(tmp) / "cache", 1.0, "fixed", args.size, progress=False)
        build_s = time.perf_counter() - started
        jpeg = samples_per_second(FolderDataset(args.folder, args.size, augment=augment), args.batch_size, args.workers, args.epochs)
        cached = samples_per_second(LandmarkDataset(cache, augment=augment), args.batch_size, args.workers, args.epochs)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak_children_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"{'path':<28}{'samples/s':>12}")
    print(f"{'JPEG decode every epoch':<28}{jpeg:>12.0f}")
    print(f"{'gamma cache (memmap)':<28}{cached:>12.0f}")
    print(f"cache build: {build_s:.1f} s; peak RSS main {peak_mb:.0f} MB, largest worker {peak_children_mb:.0f} MB")
    print(json.dumps({"jpeg_sps": round(jpeg, 1), "cache_sps": round(cached, 1), "speedup": round(cached / jpeg, 2),
                      "size": args.size, "workers": args.workers, "augment": augment is not None,
                      "peak_rss_mb": round(peak_mb), "cache_build_s": round(build_s, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
