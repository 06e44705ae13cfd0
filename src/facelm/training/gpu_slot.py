"""One GPU per training process on a multi-GPU machine: a slot held through a file lock.

``snakemake --cores 32 --resources gpu=4`` caps how many GPU jobs run at once, but it does not
say which GPU each job should use. With ``FACELM_GPU_SLOTS`` set to the device ids to share
(``"0,1,2,3"``), every training process (``facelm train``, ``tune``, ``distill``, ``ablation``,
and each worker of a ``torchrun``) takes the first free slot, an exclusive ``flock`` on
``<FACELM_GPU_SLOT_DIR>/gpu<id>.lock``, and sets ``CUDA_VISIBLE_DEVICES`` to that one id before
CUDA starts. The kernel drops the lock when the process exits, is killed or crashes, so a slot
cannot leak. When every slot is taken the process waits for one.

Unset (the default) this does nothing: a one-GPU machine needs no slots, and SLURM binds each
job's GPUs itself (``--gpus``), so do not set it in a cluster job's environment.
"""

from __future__ import annotations

import fcntl
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

from facelm.errors import FacelmError

SLOTS_ENV = "FACELM_GPU_SLOTS"
DIR_ENV = "FACELM_GPU_SLOT_DIR"

_held: IO | None = None  # this process's slot: the open, locked file (kept open for the process's life)


def default_lock_dir() -> Path:
    """Per machine and user: GPUs belong to the machine, so the locks live in its local temp dir."""
    return Path(tempfile.gettempdir()) / f"facelm-gpu-slots-{os.getuid()}"


def parse_slots(spec: str) -> list[str]:
    ids = [part.strip() for part in spec.split(",") if part.strip()]
    if not ids or not all(part.isdigit() for part in ids) or len(set(ids)) != len(ids):
        raise FacelmError(f"{SLOTS_ENV}={spec!r}: expected distinct GPU ids separated by commas, e.g. 0,1,2,3")
    return ids


def claim_gpu_slot(poll_s: float = 1.0) -> str | None:
    """Hold a free GPU slot for this process and make it the only visible GPU; returns its id.

    Returns None (and changes nothing) when ``FACELM_GPU_SLOTS`` is unset or empty."""
    global _held
    spec = os.environ.get(SLOTS_ENV, "")
    if not spec.strip():
        return None
    ids = parse_slots(spec)
    if _held is not None:
        return os.environ["CUDA_VISIBLE_DEVICES"]
    lock_dir = Path(os.environ.get(DIR_ENV) or default_lock_dir())
    lock_dir.mkdir(parents=True, exist_ok=True)
    told = False
    while True:
        for device in ids:
            handle = open(lock_dir / f"gpu{device}.lock", "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")  # who holds it, for a person looking at the folder
            handle.flush()
            _held = handle
            os.environ["CUDA_VISIBLE_DEVICES"] = device
            return device
        if not told:
            print(f"waiting for a free GPU slot among {','.join(ids)} ({lock_dir})", file=sys.stderr)
            told = True
        time.sleep(poll_s)
