"""What durability costs: the pipeline's writers at 10,000 faces, with fsync and with it switched off.

    .venv/bin/python benchmarks/fsync_cost.py [--n 10000] [--repeats 3] [--root /tmp/facelm-fsync]

Three writers, each timed with :mod:`facelm.atomic` as it is (file contents and folders fsynced)
and with its fsync replaced by nothing, alternately, ``--repeats`` times; the time spent inside
fsync is measured too (wall time; a folder's files, fsynced by several threads at once, count once):

- ``cache``: ``build_cache`` of N faces at 128 px (``images.npy`` N x 128 x 128 x 3 = 0.49 GB at
  10k, plus landmarks and meta.json), decoding in this process;
- ``submission``: ``write_solution`` + ``write_zip`` of N rows (the prediction itself is left out:
  fsync does not touch it);
- ``prepare-like folder``: N files of 30 KB (the size of a 384 px JPEG crop) written into an
  ``atomic_dir``, as ``prepare`` does, whose fsync is of N files (batched over
  ``facelm.atomic.FSYNC_THREADS`` threads; also timed with 1 thread).

The input folder is N links to the demo data's crops (no decoding cost beyond the cache's own), so
the run needs only a few MB of new disk beyond the outputs. Prints one table and one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from facelm import atomic
from facelm.challenge.submission import write_solution, write_zip
from facelm.data.annot import load_annot, save_annot
from facelm.data.cache import build_cache
from facelm.data.demo import make_demo_data


class FsyncClock:
    """Stands in for ``facelm.atomic.fsync_path`` and ``_fsync_tree``: times them (wall time, a folder's
    threaded fsyncs counted once), or skips them (``enabled=False``)."""

    def __init__(self):
        self.real_path, self.real_tree = atomic.fsync_path, atomic._fsync_tree
        self.enabled, self.seconds, self.in_tree = True, 0.0, False

    def path(self, path) -> None:
        if self.enabled:
            self._timed(self.real_path, path)

    def tree(self, root) -> None:
        if self.enabled:
            self.in_tree = True
            try:
                self._timed(self.real_tree, root)
            finally:
                self.in_tree = False

    def _timed(self, function, argument) -> None:
        if self.in_tree and function is self.real_path:  # a call of the folder's own fsync: timed with it
            function(argument)
            return
        started = time.perf_counter()
        function(argument)
        self.seconds += time.perf_counter() - started

    def install(self, stack: contextlib.ExitStack) -> None:
        stack.callback(setattr, atomic, "fsync_path", self.real_path)
        stack.callback(setattr, atomic, "_fsync_tree", self.real_tree)
        atomic.fsync_path, atomic._fsync_tree = self.path, self.tree


def linked_folder(demo: Path, out: Path, n: int) -> Path:
    """N crops as links to the demo crops, with their labels (annot.pkl)."""
    names, points = load_annot(demo / "annot.pkl")
    out.mkdir(parents=True)
    new_names = [f"{i:06d}.jpg" for i in range(n)]
    for i, name in enumerate(new_names):
        os.link(demo / names[i % len(names)], out / name)
    save_annot(out / "annot.pkl", new_names, points[np.arange(n) % len(names)])
    return out


def writers(root: Path, n: int, crops: Path) -> dict:
    rng = np.random.default_rng(0)
    names = [f"{i:06d}.jpg" for i in range(n)]
    points = rng.uniform(0, 384, (n, 68, 2)).astype(np.float32)
    blob = rng.integers(0, 256, 30_000, dtype=np.uint8).tobytes()

    def cache():
        build_cache(crops, root / "cache", 1.0, "fixed", 128, workers=0, progress=False)

    def submission():
        write_solution(root / "sub" / "solution.txt", names, points)
        write_zip(root / "sub" / "solution.txt", root / "sub" / "solution.zip")

    def folder():
        with atomic.atomic_dir(root / "prepared") as tmp:
            for name in names:
                (tmp / name).write_bytes(blob)

    return {"cache": cache, "submission": submission, "prepare-like folder": folder}


def timed(write, clock: FsyncClock, enabled: bool) -> tuple[float, float]:
    clock.enabled, clock.seconds = enabled, 0.0
    os.sync()  # start each run with no dirty pages of the one before
    started = time.perf_counter()
    write()
    return time.perf_counter() - started, clock.seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--root", type=Path, default=Path("/tmp/facelm-fsync"))
    args = parser.parse_args()
    shutil.rmtree(args.root, ignore_errors=True)
    demo = make_demo_data(args.root / "demo", n_train=48, n_val=1, n_test=1) / "synthetics_train"
    crops = linked_folder(demo, args.root / "crops", args.n)
    clock = FsyncClock()
    results = {}
    with contextlib.ExitStack() as stack:
        clock.install(stack)
        for name, write in writers(args.root, args.n, crops).items():
            runs = {"fsync": [], "no fsync": [], "fsync_s": []}
            for _ in range(args.repeats):
                for enabled in (True, False):
                    seconds, in_fsync = timed(write, clock, enabled)
                    runs["fsync" if enabled else "no fsync"].append(seconds)
                    if enabled:
                        runs["fsync_s"].append(in_fsync)
            results[name] = {key: round(statistics.median(values), 3) for key, values in runs.items()}
            print(f"{name:22s} with fsync {results[name]['fsync']:7.2f} s (in fsync {results[name]['fsync_s']:6.2f} s), "
                  f"without {results[name]['no fsync']:7.2f} s", file=sys.stderr, flush=True)
        threads, atomic.FSYNC_THREADS = atomic.FSYNC_THREADS, 1
        one = [timed(writers(args.root, args.n, crops)["prepare-like folder"], clock, True)[1] for _ in range(args.repeats)]
        atomic.FSYNC_THREADS = threads
        results["prepare-like folder"]["fsync_s_1_thread"] = round(statistics.median(one), 3)
        print(f"{'prepare-like folder':22s} in fsync with 1 thread {statistics.median(one):6.2f} s", file=sys.stderr)
    shutil.rmtree(args.root, ignore_errors=True)
    print(json.dumps({"n": args.n, "repeats": args.repeats, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
