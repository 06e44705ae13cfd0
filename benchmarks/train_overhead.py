"""Where `facelm train` time goes, against the pure compute of benchmarks/train_speed.py.

    .venv/bin/python benchmarks/train_overhead.py [--data ../shared/data/300w_train] [--val ../shared/data/aflw_val]
        [--model mobilenetv3_small_100 --head heatmap] [--size 128] [--batch-size 64] [--epochs 10] [--threads 1]

Pure compute: forward + loss + backward + AdamW step on one synthetic batch, repeated
(``train_speed.images_per_second``), same model, size, batch and torch threads. Then ``facelm
train`` runs (a fresh process each, so imports and worker start-up count) in variants:
``default`` (validation every epoch, ``augment.backend: batch``: OpenCV in the DataLoader workers
on a CPU), ``val_every`` (validation after the last epoch only) and ``albumentations``
(``augment.backend: albumentations``, validation every epoch). For each: wall time, images/s over
the whole process (training images / wall), the share of the pure rate, and the trainer's own
time per phase (metrics.json ``phase_seconds``).
Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_speed import images_per_second  # noqa: E402

from facelm.data.folder import open_folder  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(SHARED / "300w_train"))
    parser.add_argument("--val", default=str(SHARED / "aflw_val"))
    parser.add_argument("--model", default="mobilenetv3_small_100")
    parser.add_argument("--head", default="heatmap")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10, help="timed steps of the pure-compute loop")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    pure = images_per_second(args.model, {"head": args.head} if args.head else {}, args.size, args.batch_size, device,
                             args.steps)
    n_train = len(open_folder(args.data))
    images = (n_train // args.batch_size) * args.batch_size * args.epochs  # drop_last
    variants = {"default": [], "val_every": [f"train.val_every={args.epochs}"],
                "albumentations": ["augment.backend=albumentations"]}
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.yaml"
        config.write_text(json.dumps({
            "data_dir": str(Path(args.data).parent), "train_sets": [args.data],
            "splits": {"train": args.data, "val": args.val, "test": args.val}, "results_dir": str(Path(tmp) / "results"),
            "models": [{"name": args.model, "kwargs": {"head": args.head} if args.head else {}}],
            "train": {"size": args.size, "epochs": args.epochs, "batch_size": args.batch_size, "workers": args.workers},
        }))
        # build the caches once, outside the timings
        subprocess.run([sys.executable, "-m", "facelm", "train", "--config", str(config), "train.epochs=1",
                        "--out", str(Path(tmp) / "warm"), "--threads", str(args.threads)], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for name, overrides in variants.items():
            out = Path(tmp) / name
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "facelm", "train", "--config", str(config), *overrides,
                            "--out", str(out), "--threads", str(args.threads)], env=env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wall = time.perf_counter() - started
            phases = json.loads((out / "metrics.json").read_text())["phase_seconds"]
            rows.append({"variant": name, "wall_s": round(wall, 1), "img_s": round(images / wall, 1),
                         "of_pure": round(images / wall / pure, 3),
                         "process_start_s": round(wall - sum(phases.values()), 1), "phases": phases})
    print(f"pure compute ({args.model}-{args.head}, {args.size} px, batch {args.batch_size}, {args.threads} thread(s), "
          f"{device}): {pure:.1f} img/s; {n_train} training images x {args.epochs} epochs")
    print(f"{'variant':<11}{'wall s':>8}{'img/s':>8}{'of pure':>9}  time per phase (s)")
    for row in rows:
        phases = ", ".join(f"{k} {v:.1f}" for k, v in {"process start + imports": row["process_start_s"],
                                                          **row["phases"]}.items())
        print(f"{row['variant']:<11}{row['wall_s']:>8.1f}{row['img_s']:>8.1f}{row['of_pure']:>9.1%}  {phases}")
    print(json.dumps({"pure_img_s": round(pure, 1), "device": device, "threads": args.threads, "model": args.model,
                      "size": args.size, "batch_size": args.batch_size, "epochs": args.epochs, "n_train": n_train,
                      "runs": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
