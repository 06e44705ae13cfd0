"""Tuning across machines: two `facelm tune` workers share one study on a real PostgreSQL server (slow).

The server is Debian's postgresql package (`.ci/run` installs it), started on loopback in a temp
dir and stopped afterwards; if it cannot start, the test fails with the reason. The password
travels the way the README tells users: a libpq password file outside the repository
(PGPASSFILE), never config.yaml.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
import yaml

from facelm.config import parse_config
from facelm.training.tune import study_name

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "tune-test-pw"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        pytest.fail(f"PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/{name}): apt-get install postgresql")
    return found[-1]


@pytest.fixture
def postgres(monkeypatch):
    """A throwaway server on 127.0.0.1 with database `optuna`, user `facelm`; yields (port, env)."""
    # the server refuses to run as root: as root, run it as Debian's `postgres` account
    user = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="facelm-pg-"))
    data = root / "data"
    if user:
        shutil.chown(root, user)
    pwfile = root / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if user:
        shutil.chown(pwfile, user)
    port = _free_port()

    def run(*cmd):
        result = subprocess.run(cmd, capture_output=True, text=True, user=user, cwd=root)
        if result.returncode != 0:
            pytest.fail(f"{' '.join(map(str, cmd))} failed: {result.stderr.strip()[-1500:]}")

    run(_pg_bin("initdb"), "-D", data, "-U", "facelm", "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8")
    run(_pg_bin("pg_ctl"), "-D", data, "-l", root / "server.log", "-w", "-t", "60", "start",
        "-o", f"-h 127.0.0.1 -p {port} -k {root}")
    try:
        # the password lives in a libpq password file outside the repo (mode 0600, read by psycopg2)
        passfile = Path(tempfile.mkdtemp(prefix="facelm-pgpass-")) / "pgpass"
        passfile.write_text(f"127.0.0.1:{port}:*:facelm:{PASSWORD}\n")
        passfile.chmod(0o600)
        monkeypatch.setenv("PGPASSFILE", str(passfile))
        monkeypatch.delenv("FACELM_OPTUNA_STORAGE", raising=False)
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        created = subprocess.run([_pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "facelm", "optuna"],
                                 capture_output=True, text=True, env=env)
        assert created.returncode == 0, created.stderr
        yield port, env
    finally:
        subprocess.run([_pg_bin("pg_ctl"), "-D", data, "-m", "fast", "-w", "stop"], capture_output=True, user=user,
                       cwd=root)
        shutil.rmtree(root, ignore_errors=True)


def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_two_workers_share_a_postgresql_study(postgres, demo_data, tmp_path):
    port, env = postgres
    url = f"postgresql://facelm@127.0.0.1:{port}/optuna"  # no password: libpq finds it in PGPASSFILE
    config = {
        "data_dir": str(demo_data), "train_sets": ["synthetics_train"], "results_dir": str(tmp_path / "results"),
        "run_name": "pgtune", "models": [{"name": "pfld_025"}], "folds": {"k": 2, "train_folds": [0]},
        "train": {"size": 64, "batch_size": 8, "workers": 0},
        "tune": {"enabled": True, "model": {"name": "pfld_025"}, "n_trials": 4, "epochs": 1, "storage": url,
                 "search_space": {"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}},
    }
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    facelm = [sys.executable, "-m", "facelm"]
    subprocess.run([*facelm, "folds", "--config", str(config_file), "--out", str(tmp_path / "results" / "folds.csv")],
                   check=True, env=env, capture_output=True)

    started = time.perf_counter()
    workers = [subprocess.Popen([*facelm, "tune", "--config", str(config_file), "--worker", str(k)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in (0, 1)]
    outputs = [w.communicate(timeout=600) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], [err[-6000:] for _, err in outputs]
    print(f"two workers: {time.perf_counter() - started:.1f} s")
    for out, _ in outputs:
        assert f"in postgresql://facelm@127.0.0.1:{port}/optuna" in out  # the storage both used

    storage = optuna.storages.RDBStorage(url)
    study = optuna.load_study(study_name=study_name(parse_config(config)), storage=storage)
    trials = study.get_trials()
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    # complete: n_trials finished (a worker finishing its last trial may add one more), none left running
    assert 4 <= len(trials) <= 5 and all(t.state in finished for t in trials), [t.state for t in trials]
    # each trial recorded once: distinct numbers, one trial folder each, whose metrics are the trial's value
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    trial_dirs = tmp_path / "results" / "optuna" / "trials"
    assert sorted(int(p.name) for p in trial_dirs.iterdir()) == list(range(len(trials)))
    for trial in trials:
        if trial.state == optuna.trial.TrialState.COMPLETE:
            metrics = json.loads((trial_dirs / str(trial.number) / "metrics.json").read_text())
            assert trial.value == pytest.approx(metrics["val_nme_384"])
    # the workers ran at the same time: some two trials overlap
    spans = sorted((t.datetime_start, t.datetime_complete) for t in trials)
    assert any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:]))

    # read back through optuna-dashboard's HTTP API (same URL, password from PGPASSFILE)
    dash_port = _free_port()
    server = subprocess.Popen([str(Path(sys.executable).with_name("optuna-dashboard")), url, "--host", "127.0.0.1",
                               "--port", str(dash_port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base, deadline = f"http://127.0.0.1:{dash_port}", time.time() + 60
        while True:
            try:
                studies = _get(f"{base}/api/studies")["study_summaries"]
                break
            except OSError:
                assert server.poll() is None, f"optuna-dashboard exited: {server.stderr.read()[-1000:]}"
                assert time.time() < deadline, "optuna-dashboard did not start"
                time.sleep(0.3)
        summary = next(s for s in studies if s["study_name"] == study_name(parse_config(config)))
        detail = _get(f"{base}/api/studies/{summary['study_id']}")
        assert sorted(t["number"] for t in detail["trials"]) == sorted(t.number for t in trials)
        complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
        if complete:
            assert min(t["values"][0] for t in detail["trials"] if t.get("values")) == pytest.approx(study.best_value)
    finally:
        server.terminate()
        server.wait(10)
