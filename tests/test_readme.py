"""The README's commands run as written: every code block marked ``<!-- readme-test: runs in seconds -->``
(on the line before it) runs in a folder holding what the Quickstart names: ``photo.jpg`` (a
300w_raw_sample photo) and ``clip.mp4`` (a short clip made from it). Blocks that install, train or
take minutes are left unmarked; the install itself is tests/test_inference_install.py's."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
MARK = "<!-- readme-test: runs in seconds -->"


def marked_blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of each fenced block whose opening fence follows the mark."""
    return re.findall(re.escape(MARK) + r"\s*\n```(\w+)\n(.*?)```", text, re.S)


def _clip(photo: Path, out: Path, frames: int = 12) -> None:
    """A few frames panning across the photo, as an mp4."""
    image = cv2.imread(str(photo))
    h, w = image.shape[:2]
    side = min(h, w) // 2 * 2
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), 10, (480, 480))
    for i in range(frames):
        y = (h - side) * i // (2 * frames)
        writer.write(cv2.resize(image[y : y + side, :side], (480, 480), interpolation=cv2.INTER_AREA))
    writer.release()


def test_the_mark_finds_the_quickstart_blocks():
    languages = [language for language, _ in marked_blocks(README.read_text())]
    assert languages.count("bash") >= 1 and languages.count("python") >= 1


def test_marked_readme_blocks_run_as_written(raw_300w_sample, tmp_path):
    shutil.copy(raw_300w_sample / "1051618982_1.jpg", tmp_path / "photo.jpg")
    _clip(tmp_path / "photo.jpg", tmp_path / "clip.mp4")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}  # this interpreter's `facelm`
    for language, code in marked_blocks(README.read_text()):
        command = ["bash", "-euo", "pipefail", "-c", code] if language == "bash" else [sys.executable, "-c", code]
        run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                             env=env)
        assert run.returncode == 0 and "Traceback" not in run.stderr, f"{language} block:\n{code}\n{run.stderr[-2000:]}"
    assert (tmp_path / "predictions" / "photo.json").is_file() and (tmp_path / "tracked" / "clip.landmarks.csv").is_file()


@pytest.mark.parametrize("text, expected", [
    (f"{MARK}\n```bash\necho hi\n```\n```bash\nnot marked\n```\n", [("bash", "echo hi\n")]),
    ("```bash\necho hi\n```\n", []),
])
def test_marked_blocks_parses_only_marked_fences(text, expected):
    assert marked_blocks(text) == expected


def test_the_readmes_pictures_are_in_the_repository():
    """The first screen's picture (and any other) is a tracked file, not one a local script made."""
    pictures = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", README.read_text())
    assert pictures, "the README shows no picture"
    tracked = subprocess.run(["git", "ls-files", *pictures], cwd=README.parent, capture_output=True, text=True).stdout.split()
    assert sorted(tracked) == sorted(pictures), f"not in git: {sorted(set(pictures) - set(tracked))}"
