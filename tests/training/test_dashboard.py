"""optuna-dashboard serves a facelm study over HTTP (loopback), and we can read it back."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_dashboard_lists_the_study_and_its_trials(tmp_path):
    db = tmp_path / "study.db"
    study = optuna.create_study(study_name="facelm-test", storage=f"sqlite:///{db}", direction="minimize")
    study.optimize(lambda t: (t.suggest_float("lr", 1e-4, 1e-2, log=True) - 1e-3) ** 2, n_trials=4)
    port = _free_port()
    exe = Path(sys.executable).with_name("optuna-dashboard")
    server = subprocess.Popen([str(exe), f"sqlite:///{db}", "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while True:
            try:
                studies = _get(f"{base}/api/studies")["study_summaries"]
                break
            except OSError:
                assert time.time() < deadline, "dashboard did not start"
                assert server.poll() is None, "dashboard exited"
                time.sleep(0.3)
        assert [s["study_name"] for s in studies] == ["facelm-test"]
        detail = _get(f"{base}/api/studies/{studies[0]['study_id']}")
        assert len(detail["trials"]) == 4
        values = sorted(t["values"][0] for t in detail["trials"])
        assert values[0] == min(t.value for t in study.trials)
    finally:
        server.terminate()
        server.wait(10)
