"""``kill -9`` or SIGTERM at a random moment leaves the old output or none, never a broken one.

For each of ``cache``, ``prepare``, ``submit``, ``ensemble`` and ``tune``: a first run is killed
with SIGKILL (no output before it), the output is checked (absent, or complete and valid), a rerun
must succeed and leave nothing beside its output (it removes the killed run's temporary and lock
files), then a run over that output is killed and the output checked again. Then a run is sent
SIGTERM (as ``timeout``, SLURM, ``docker stop`` and Snakemake send it, to the main process only):
it must exit 143 with one line, leave the old output or none, and nothing beside it. The kill
comes a random time (seeded, printed) after the command starts writing -- the first new entry
beside its output -- so it lands inside the write, where a non-atomic writer would leave half a
file. Two ``cache --force`` runs on one output at once must both succeed.
(Training has its own kill test in tests/training/test_trainer.py.)
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.slow

RNG = random.Random(int(os.environ.get("FACELM_KILL_SEED", "14")))


def _entries(folder: Path) -> set[str]:
    return {str(p) for p in folder.rglob("*")} if folder.exists() else set()


def debris(folder: Path) -> list[str]:
    """Hidden entries under ``folder``: temporary files and folders, lock files, a swap's ``.old``."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*")) if folder.exists() else []


def run_and_kill(argv: list[str], watch: Path | None, spread: float, cwd: Path,
                 signum: int = signal.SIGKILL) -> tuple[bool, float]:
    """Start ``facelm ARGV``; once anything new appears under ``watch`` (or at once when ``watch`` is
    None), wait a random 0..spread s and send ``signum``: SIGKILL to its process group, another signal
    to its main process alone. Returns (killed, seconds from the start to the end of the run); a run
    ended by SIGTERM or SIGHUP must have exited 128 + signal, its stderr ending in one line saying so,
    without a traceback."""
    before = set()
    if watch is not None:
        watch.mkdir(parents=True, exist_ok=True)
        before = _entries(watch)
    started = time.time()
    with open(cwd / f"stderr-{argv[0]}.txt", "w+") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "facelm", *argv], cwd=cwd, stdout=subprocess.DEVNULL,
                                stderr=stderr, start_new_session=True)
        deadline = time.time() + 120
        while watch is not None and proc.poll() is None and _entries(watch) == before and time.time() < deadline:
            time.sleep(0.005)
        time.sleep(RNG.uniform(0, spread))
        killed = proc.poll() is None
        if killed:
            os.killpg(proc.pid, signum) if signum == signal.SIGKILL else os.kill(proc.pid, signum)
        proc.wait()
        killed = killed and proc.returncode != 0  # a signal during the exit of a finished run is ignored
        stderr.seek(0)
        lines = stderr.read().strip().splitlines()
    if killed and signum != signal.SIGKILL and proc.returncode != 0:
        name = signal.Signals(signum).name
        assert proc.returncode == 128 + signum, f"facelm {argv[0]}: status {proc.returncode} after {name}: {lines}"
        assert lines[-1:] == [f"facelm {argv[0]}: terminated by {name}"], lines  # after any log lines it wrote
        assert not any("Traceback" in line for line in lines), lines
    assert killed or proc.returncode == 0, f"facelm {argv[0]} failed with status {proc.returncode}: {lines[-3:]}"
    return killed, time.time() - started


def kill_mid_write(argv: list[str], watch: Path, spread: float, cwd: Path, reset=None,
                   signum: int = signal.SIGKILL) -> str:
    """Kill a run while it writes. A run whose writing is too quick to hit (it finished first) is
    retried with the kill at a random moment of its whole measured run time instead (``reset``
    first removes what the finished run wrote, to retry from the same state)."""
    killed, seconds = run_and_kill(argv, watch, spread, cwd, signum)
    for _ in range(6):
        if killed:
            return f"facelm {argv[0]}: {signal.Signals(signum).name} (run of {seconds:.2f} s so far)"
        if reset:
            reset()
        killed, seconds = run_and_kill(argv, None, seconds, cwd, signum)
    pytest.fail(f"facelm {argv[0]} always finished before the kill")


def rerun(argv: list[str], cwd: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "facelm", *argv], cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def check_killed_twice(argv, watch, spread, cwd, valid, outputs, again=()) -> None:
    """Kill a first run (no output yet), check; rerun to completion, nothing left beside the output; kill a
    run over that output (``argv`` plus ``again``: what makes it redo work rather than find it done), check;
    SIGTERM a run over it (after a rerun), check, nothing left beside the output."""
    def reset():
        for path in outputs:
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)

    what = kill_mid_write(argv, watch, spread, cwd, reset)
    print(what)
    valid(allow_absent=True, note=what)
    rerun(argv, cwd)
    valid(allow_absent=False, note="after the rerun")
    assert not debris(watch), f"the rerun left the killed run's files: {debris(watch)}"
    what = kill_mid_write(argv + list(again), watch, spread, cwd)
    print(what, "(over a finished output)")
    valid(allow_absent=True, note=what)  # atomic_dir swaps folders with two renames: old, or none, in between
    rerun(argv + list(again), cwd)
    what = kill_mid_write(argv + list(again), watch, spread, cwd, signum=signal.SIGTERM)
    print(what, "(over a finished output)")
    valid(allow_absent=True, note=what)
    assert not debris(watch), f"SIGTERM left files beside the output: {debris(watch)}"


def test_cache(demo_data, tmp_path):
    from facelm.data.cache import cache_is_fresh, open_cache

    folder, out = demo_data / "synthetics_train", tmp_path / "cache" / "s64"
    argv = ["cache", str(folder), str(out), "--size", "64", "--workers", "0"]

    def valid(allow_absent, note):
        if allow_absent and not out.exists():
            return
        cache = open_cache(out)
        assert len(cache) == 48 and np.asarray(cache.images).any(), note
        assert cache_is_fresh(folder, out, 1.0, "fixed", 64), note

    check_killed_twice(argv, out.parent, 0.5, tmp_path, valid, [out], again=["--force"])


def test_prepare(tmp_path):
    from facelm.data.demo import make_release_data
    from facelm.data.folder import imread_rgb, open_folder

    raw, out = tmp_path / "raw", tmp_path / "prepared" / "train"
    make_release_data(raw, 24, workers=1)
    argv = ["prepare", str(raw), str(out), "--workers", "1"]

    def valid(allow_absent, note):
        if allow_absent and not out.exists():
            return
        faces = open_folder(out)
        assert len(faces) == 24 and faces.labelled, note
        assert all(imread_rgb(faces.path(n)).shape == (384, 384, 3) for n in faces.names), note

    check_killed_twice(argv, out.parent, 1.0, tmp_path, valid, [out])


def _untrained_model(path: Path) -> Path:
    from facelm.models import create_model
    from facelm.models.checkpoint import save_checkpoint

    save_checkpoint(path, create_model("pfld_025"), {"input_size": 64, "gamma": 1.0, "gamma_mode": "fixed"})
    return path


def test_submit(demo_data, tmp_path):
    from facelm.challenge.submission_check import validate_solution

    test = tmp_path / "test"
    test.mkdir()
    for i in range(100):
        shutil.copy(demo_data / "aflw_test" / f"{i % 10:06d}.jpg", test / f"t{i:04d}.jpg")
    names = sorted(p.name for p in test.iterdir())
    out = tmp_path / "submissions" / "run"
    argv = ["submit", "--model", str(_untrained_model(tmp_path / "model.pt")), "--test", str(test),
            "--out-dir", str(out), "--batch-size", "16"]

    def valid(allow_absent, note):
        for name in ("solution.txt", "solution.zip"):
            if allow_absent and not (out / name).exists():
                continue
            validate_solution(out / name, names)

    check_killed_twice(argv, out.parent, 0.1, tmp_path, valid, [out])


def _write_config(config, path: Path) -> Path:
    path.write_text(yaml.safe_dump(config.to_dict()))
    return path


def test_ensemble(tiny_pipeline, tmp_path):
    from facelm.models.checkpoint import read_ensemble_spec

    config, runs = tiny_pipeline
    out = tmp_path / "ensemble" / "e.json"
    argv = ["ensemble", "--config", str(_write_config(config, tmp_path / "config.yaml")), "--runs",
            *map(str, runs), "--out", str(out)]

    def valid(allow_absent, note):
        if allow_absent and not out.exists():
            return
        spec, members = read_ensemble_spec(out)
        assert members and spec["total_mb"] > 0, note

    check_killed_twice(argv, out.parent, 0.1, tmp_path, valid, [out])


def test_tune(tiny_pipeline, tmp_path):
    from facelm.training.tune import open_study

    config, _ = tiny_pipeline
    config = config.updated(results_dir=str(tmp_path / "results"),
                            tune={"enabled": True, "n_trials": 2, "epochs": 1, "model": {"name": "pfld_025"},
                                  "search_space": {"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}})
    path = _write_config(config, tmp_path / "config.yaml")
    optuna_dir, db = tmp_path / "results" / "optuna", tmp_path / "results" / "optuna" / "study.db"
    argv = ["tune", "--config", str(path)]

    def valid(allow_absent, note):
        done = optuna_dir / "worker0.done"
        if db.exists():
            open_study(config, f"sqlite:///{db}").get_trials()  # the SQLite file opens and reads
        if allow_absent and not done.exists():
            return
        summary = json.loads(done.read_text())
        assert summary["trials"]["COMPLETE"] + summary["trials"]["PRUNED"] + summary["trials"]["FAIL"] >= 2, note

    check_killed_twice(argv, optuna_dir, 3.0, tmp_path, valid, [optuna_dir], again=["--trials", "3"])


def test_cache_sighup_cleans_up_like_sigterm(demo_data, tmp_path):
    folder, out = demo_data / "synthetics_train", tmp_path / "cache" / "s64"
    argv = ["cache", str(folder), str(out), "--size", "64", "--workers", "2"]
    print(kill_mid_write(argv, out.parent, 0.5, tmp_path, reset=lambda: shutil.rmtree(out), signum=signal.SIGHUP))
    assert not out.exists() and not debris(out.parent), debris(out.parent)


def test_two_cache_writers_of_one_output_both_succeed(demo_data, tmp_path):
    """Two `cache --force` on one output at once (two Snakemake runs, a rerun while one still goes): the
    second waits for the first, both exit 0, the output is complete, nothing is left beside it. The
    overlap is forced: the test holds the output's lock (as a third writer would) while both start, so
    both must queue, and then one must wait for the other."""
    from facelm.atomic import output_lock
    from facelm.data.cache import cache_is_fresh, open_cache

    folder, out = demo_data / "synthetics_train", tmp_path / "cache" / "s64"
    argv = [sys.executable, "-m", "facelm", "cache", str(folder), str(out), "--size", "64", "--workers", "0", "--force"]
    rerun(argv[3:], tmp_path)
    with output_lock(out):
        procs = [subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for _ in range(2)]
        said = ["", ""]  # each writer's stderr so far
        deadline = time.monotonic() + 120
        while not all("waiting for another process writing" in _read_more(proc, said, i) for i, proc in enumerate(procs)):
            assert time.monotonic() < deadline, "the writers did not both wait for the held lock"
            assert all(proc.poll() is None for proc in procs), "a writer ended while the lock was held"
            time.sleep(0.2)
    results = [(proc.wait(), _read_more(proc, said, i)) for i, proc in enumerate(procs)]
    assert [status for status, _ in results] == [0, 0], results
    assert len(open_cache(out)) == 48 and cache_is_fresh(folder, out, 1.0, "fixed", 64)
    assert not debris(out.parent), debris(out.parent)


def _read_more(proc: subprocess.Popen, said: list[str], index: int) -> str:
    """Add what ``proc``'s stderr holds now (read without blocking) to ``said[index]``; return it all."""
    os.set_blocking(proc.stderr.fileno(), False)
    said[index] += (proc.stderr.read() or b"").decode(errors="replace")
    return said[index]
