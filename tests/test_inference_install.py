"""The inference-only install (slow): a fresh clone, a fresh venv, a plain `pip install .`, then
`facelm predict photo.jpg` with no --model and the README's three Python lines, without torch.

Prints the venv's size and the install time. The clone's src/facelm/weights must hold a shipped
model (the release commits them); to measure before that, FACELM_EXTRA_WEIGHTS=FOLDER copies a
folder of NAME.onnx + NAME.md into the clone before installing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()) / 2**20


@pytest.mark.slow
def test_pip_install_dot_predicts_a_photo_with_the_shipped_model(raw_300w_sample, tmp_path):
    clone, venv, work = tmp_path / "clone", tmp_path / "venv", tmp_path / "work"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    extra = os.environ.get("FACELM_EXTRA_WEIGHTS")
    if extra:
        for path in Path(extra).glob("*.*"):
            shutil.copy(path, clone / "src" / "facelm" / "weights" / path.name)
    assert list((clone / "src" / "facelm" / "weights").glob("*.onnx")), "the clone ships no model in src/facelm/weights"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    start = time.perf_counter()
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", str(clone)], check=True)
    install_s = time.perf_counter() - start
    print(f"inference-only venv: {_size_mb(venv):.0f} MB, `pip install .` took {install_s:.0f} s")
    python = str(venv / "bin" / "python")
    assert subprocess.run([python, "-c", "import torch"], capture_output=True).returncode != 0  # no torch installed

    work.mkdir()
    shutil.copy(sorted(raw_300w_sample.glob("*.jpg"))[0], work / "photo.jpg")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"
    run = subprocess.run(["facelm", "predict", "photo.jpg"], cwd=work, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    record = json.loads((work / "predictions" / "photo.json").read_text())
    assert record["faces"] and len(record["faces"][0]["landmarks"]) == 68

    readme = re.search(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S).group(1)
    code = readme + "assert faces and faces[0].landmarks.shape == (68, 2), faces\nprint(len(faces), 'faces')\n"
    lines = subprocess.run([python, "-c", code], cwd=work, env=env, capture_output=True, text=True)
    assert lines.returncode == 0, lines.stderr
