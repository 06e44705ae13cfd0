"""Peak RSS of `facelm predict` over a folder of N self-made faces: memory must stay flat in N.

    .venv/bin/python benchmarks/predict_memory.py --n 5000 --work /tmp/predict_memory

Draws N faces with the demo generator into WORK (not the repo), saves an untrained pfld_025
model (input 64 px), runs `facelm predict FOLDER --crops`, samples the process's RSS from /proc
every 0.5 s and prints RSS against images written, then the peak (VmHWM).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path


def _status(pid: int) -> tuple[float, float]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--work", default="/tmp/predict_memory")
    args = parser.parse_args()

    from facelm.data.demo import make_demo_data
    from facelm.models import create_model
    from facelm.models.checkpoint import save_checkpoint

    work = Path(args.work)
    folder, model, out = work / "aflw_test", work / "model.pt", work / "predictions"
    if not folder.is_dir() or len(list(folder.glob("*.jpg"))) != args.n:
        make_demo_data(work, n_train=1, n_val=1, n_test=args.n)
    save_checkpoint(model, create_model("pfld_025"), {"input_size": 64, "gamma": 1.0, "gamma_mode": "fixed"})
    start = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "facelm", "predict", str(folder), "--model", str(model),
                             "--out", str(out), "--crops"], stdout=subprocess.DEVNULL)
    samples = []
    while proc.poll() is None:
        try:
            rss, peak = _status(proc.pid)
        except (FileNotFoundError, KeyError):
            break
        samples.append((time.time() - start, sum(1 for _ in out.glob("*.json")) if out.exists() else 0, rss, peak))
        time.sleep(0.5)
    assert proc.wait() == 0, "facelm predict failed"
    for i in sorted({int(f * (len(samples) - 1)) for f in (0.1, 0.25, 0.5, 0.75, 1.0)}):
        t, done, rss, peak = samples[i]
        print(f"t={t:6.1f} s  images written {done:5d}  RSS {rss:7.1f} MiB  peak so far {peak:7.1f} MiB")
    print(f"{args.n} images in {time.time() - start:.0f} s; peak RSS {max(s[3] for s in samples):.1f} MiB")


if __name__ == "__main__":
    main()
