"""GPU slots on one machine: concurrent processes each hold a distinct GPU, released on exit or kill -9.

No GPU is needed: a slot is a file lock plus CUDA_VISIBLE_DEVICES, which is what is tested."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from facelm.errors import FacelmError
from facelm.training import gpu_slot

REPO = Path(__file__).resolve().parents[2]
# claims a slot, reports it and CUDA_VISIBLE_DEVICES, then holds it until stdin closes
HOLDER = (
    "import os, sys\n"
    "from facelm.training.gpu_slot import claim_gpu_slot\n"
    "slot = claim_gpu_slot(poll_s=0.05)\n"
    "print(slot, os.environ.get('CUDA_VISIBLE_DEVICES'), flush=True)\n"
    "sys.stdin.read()\n"
)


def _env(tmp_path, slots: str) -> dict:
    return {**os.environ, gpu_slot.SLOTS_ENV: slots, gpu_slot.DIR_ENV: str(tmp_path / "locks"),
            "PYTHONPATH": str(REPO / "src")}


def _holder(env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _report(proc: subprocess.Popen, timeout: float) -> tuple[str, str] | None:
    """The holder's (slot, CUDA_VISIBLE_DEVICES), or None if it has not claimed one within timeout."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        return None
    slot, visible = proc.stdout.readline().split()
    return slot, visible


def test_concurrent_processes_hold_distinct_slots_released_on_exit_and_on_kill(tmp_path):
    env = _env(tmp_path, "0,1,2,3")
    holders = [_holder(env) for _ in range(4)]
    try:
        reports = [_report(proc, 60) for proc in holders]
        assert all(reports), reports
        assert sorted(slot for slot, _ in reports) == ["0", "1", "2", "3"]
        assert all(slot == visible for slot, visible in reports)  # each sees exactly its own GPU

        waiting = _holder(env)  # a fifth job: every slot is taken, so it waits
        holders.append(waiting)
        assert _report(waiting, 1.5) is None
        crashed = next(proc for proc, (slot, _) in zip(holders, reports) if slot == "2")
        crashed.send_signal(signal.SIGKILL)  # a crash frees its slot; the waiting job gets that one
        assert _report(waiting, 30) == ("2", "2")

        leaving, (freed, _) = next((proc, report) for proc, report in zip(holders, reports) if proc is not crashed)
        leaving.stdin.close()  # a normal exit frees its slot too
        leaving.wait(30)
        again = _holder(env)
        holders.append(again)
        assert _report(again, 30) == (freed, freed)
    finally:
        for proc in holders:
            proc.kill()
            proc.wait()


def test_unset_changes_nothing(monkeypatch):
    monkeypatch.delenv(gpu_slot.SLOTS_ENV, raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")
    assert gpu_slot.claim_gpu_slot() is None
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "5"


@pytest.mark.parametrize("spec", ["a,b", "0,0", "1;2", ","])
def test_bad_slot_list_is_one_error_naming_the_variable(monkeypatch, spec):
    monkeypatch.setenv(gpu_slot.SLOTS_ENV, spec)
    with pytest.raises(FacelmError, match=gpu_slot.SLOTS_ENV):
        gpu_slot.claim_gpu_slot()


def test_training_commands_claim_a_slot_before_they_start(tmp_path):
    """`facelm train` reads FACELM_GPU_SLOTS before anything else (a bad one stops it in one line)."""
    result = subprocess.run([sys.executable, "-m", "facelm", "train", "--config", str(tmp_path / "missing.yaml")],
                            capture_output=True, text=True, env=_env(tmp_path, "x"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"facelm train: error: {gpu_slot.SLOTS_ENV}='x': expected distinct "
                                                  "GPU ids separated by commas, e.g. 0,1,2,3"]
