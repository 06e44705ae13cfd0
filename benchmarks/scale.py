"""End to end at scale: N drawn faces in the FaceSynthetics release format through every stage.

    .venv/bin/python benchmarks/scale.py --n 1000 10000 [--root /tmp/facelm-scale] [--keep]

For each N: ``make-demo-data --release N`` (512 px PNG + 70-point ``_ldmks.txt``), then the
pipeline's own commands, each in its own process: ``prepare`` -> ``check-data`` -> ``cache``
(128 px) -> ``train`` (one epoch of the tuning default, mobilenetv3_small_100 + heatmap head, on
all N) -> ``export`` + ``submit`` (ONNX prediction of all N crops, solution.zip; the crops are
given to it as an unlabelled folder of links, as the challenge's test set comes). Per stage:
wall time, images/s, disk written, and the peak memory of the stage's whole process tree
(sampled every 0.1 s): RSS, and anonymous RSS (RSS without file pages such as the memory-mapped
cache, which the kernel can drop at will: the memory a stage really holds). Each stage's
own progress bar shows when run in a terminal.

Results go to ``benchmarks/scale_results.json`` (one record per N, replaced on a rerun of that
N) and a plot of seconds per stage against N to ``benchmarks/scale.png``. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "scale_results.json"
PLOT = REPO / "benchmarks" / "scale.png"
SIZE = 128


def _anon_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class TreeMemory(threading.Thread):
    """Peak RSS and anonymous RSS (MiB) of a process and all its descendants, summed, while it runs."""

    def __init__(self, pid: int, every: float = 0.1):
        super().__init__(daemon=True)
        self.root, self.every = psutil.Process(pid), every
        self.peak_rss = self.peak_anon = 0.0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                procs = [self.root] + self.root.children(recursive=True)
            except psutil.NoSuchProcess:
                break
            rss = anon = 0
            for proc in procs:
                try:
                    rss += proc.memory_info().rss
                    anon += _anon_kb(proc.pid) * 1024
                except psutil.NoSuchProcess:
                    pass
            self.peak_rss = max(self.peak_rss, rss / 2**20)
            self.peak_anon = max(self.peak_anon, anon / 2**20)
            self.done.wait(self.every)


def du_mib(*paths: Path) -> float:
    total = 0
    for path in paths:
        files = [path] if path.is_file() else (p for p in path.rglob("*") if p.is_file())
        total += sum(f.stat().st_size for f in files)
    return total / 2**20


def run_stage(name: str, args: list[str], n: int, outputs: list[Path], env: dict) -> dict:
    print(f"--- {name}: facelm {' '.join(args)}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "facelm", *args], env=env, stdout=subprocess.DEVNULL)
    memory = TreeMemory(proc.pid)
    memory.start()
    code = proc.wait()
    memory.done.set()
    memory.join()
    seconds = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"stage {name} failed with exit code {code}")
    row = {"stage": name, "seconds": round(seconds, 1), "img_s": round(n / seconds, 1),
           "disk_mib": round(du_mib(*outputs), 1), "peak_rss_mib": round(memory.peak_rss),
           "peak_anon_mib": round(memory.peak_anon)}
    print(f"    {seconds:8.1f} s  {row['img_s']:8.1f} img/s  disk {row['disk_mib']:8.1f} MiB  "
          f"peak RSS {row['peak_rss_mib']:6d} MiB (anonymous {row['peak_anon_mib']} MiB)", file=sys.stderr, flush=True)
    return row


def run_n(n: int, root: Path, workers: int, threads: int) -> list[dict]:
    """All stages for ``n`` faces under ``root``/n<N> (removed first)."""
    base = root / f"n{n}"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    raw, crops, results = base / "raw", base / "data" / "crops", base / "results"
    # a small labelled validation split for the trainer (the stage figures are about the N faces)
    subprocess.run([sys.executable, "-m", "facelm", "make-demo-data", str(base / "data"), "--n-train", "1",
                    "--n-val", "48", "--n-test", "1"], env=env, check=True, stdout=subprocess.DEVNULL)
    config = base / "scale.yaml"
    config.write_text(json.dumps({
        "data_dir": str(base / "data"), "train_sets": ["crops"], "splits": {"train": "crops", "val": "aflw_val",
                                                                              "test": "crops"},
        "results_dir": str(results), "models": [{"name": "mobilenetv3_small_100", "kwargs": {"head": "heatmap"}}],
        "train": {"size": SIZE, "epochs": 1, "batch_size": 64, "workers": workers},
    }))
    run = results / "runs" / "scale"
    cache = results / "cache" / "crops" / f"g1_fixed_s{SIZE}"
    index = results / "checks" / "crops.index"
    stages = [
        ("make-demo-data", ["make-demo-data", str(raw), "--release", str(n), "--workers", str(workers)], [raw]),
        ("prepare", ["prepare", str(raw), str(crops), "--workers", str(workers)], [crops]),
        ("check-data", ["check-data", str(crops), "--drop-bad", "--out", str(results / "checks" / "crops.json"),
                        "--workers", str(workers)], [results / "checks"]),
        ("cache", ["cache", str(crops), str(cache), "--size", str(SIZE), "--index", str(index),
                   "--workers", str(workers)], [cache]),
        ("train 1 epoch", ["train", "--config", str(config), "--out", str(run), "--threads", str(threads)], [run]),
        ("export", ["export", str(run / "model.pt"), str(base / "model.onnx")], [base / "model.onnx"]),
        ("submit", ["submit", "--model", str(base / "model.onnx"), "--test", str(base / "test"), "--out-dir",
                    str(base / "submission")], [base / "submission"]),
    ]
    rows = []
    for name, args, outputs in stages:
        if name == "submit":
            unlabelled_view(crops, base / "test")
        rows.append(run_stage(name, args, n, outputs, env))
    return rows


def unlabelled_view(crops: Path, test: Path) -> None:
    """``test``: a link to every JPEG of ``crops``, without annot.pkl (the challenge's test set has no labels)."""
    test.mkdir()
    with os.scandir(crops) as entries:
        for entry in entries:
            if entry.name.endswith(".jpg"):
                os.symlink(entry.path, test / entry.name)


def plot(records: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = sorted(int(k) for k in records)
    stages = [row["stage"] for row in records[str(ns[0])]["stages"]]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for stage in stages:
        seconds = [next(r["seconds"] for r in records[str(n)]["stages"] if r["stage"] == stage) for n in ns]
        ax.plot(ns, seconds, marker="o", label=stage)
    ax.set(xscale="log", yscale="log", xlabel="faces N", ylabel="wall time (s)",
           title="facelm stages against N (2 shared CPU cores, no GPU)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--root", default="/tmp/facelm-scale", help="scratch folder (needs about 0.4 MB per face)")
    parser.add_argument("--workers", type=int, default=2, help="processes per stage (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the training stage")
    parser.add_argument("--keep", action="store_true", help="keep the scratch data of each N")
    args = parser.parse_args()
    records = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for n in args.n:
        stages = run_n(n, Path(args.root), args.workers, args.threads)
        records[str(n)] = {"n": n, "workers": args.workers, "threads": args.threads, "cpus": os.cpu_count(),
                           "stages": stages, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        RESULTS.write_text(json.dumps(records, indent=1) + "\n")
        if not args.keep:
            shutil.rmtree(Path(args.root) / f"n{n}", ignore_errors=True)
    plot(records)
    print(f"{'N':>8} {'stage':<16}{'s':>9}{'img/s':>9}{'disk MiB':>10}{'RSS MiB':>9}{'anon MiB':>9}")
    for key in sorted(records, key=int):
        for row in records[key]["stages"]:
            print(f"{key:>8} {row['stage']:<16}{row['seconds']:>9.1f}{row['img_s']:>9.1f}{row['disk_mib']:>10.1f}"
                  f"{row['peak_rss_mib']:>9}{row['peak_anon_mib']:>9}")
    print(json.dumps(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
