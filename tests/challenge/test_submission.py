"""Submission writing, validation (each malformed kind refused) and scoring."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import numpy as np
import pytest

from facelm.data.annot import load_annot
from facelm.errors import FacelmError
from facelm.challenge.score import score_solution
from facelm.challenge.submission import write_solution, write_zip
from facelm.challenge.submission_check import validate_solution


@pytest.fixture
def good(demo_data, tmp_path):
    names, pts = load_annot(demo_data / "aflw_val" / "annot.pkl")
    path = tmp_path / "solution.txt"
    write_solution(path, names, pts + 1.0)
    return path, names


def test_rows_have_137_fields_4_decimals(good):
    path, names = good
    lines = path.read_text().splitlines()
    assert len(lines) == len(names) and all(len(l.split(" ")) == 137 for l in lines)
    assert lines[0].split(" ")[1].split(".")[1].__len__() == 4


def test_score_of_a_known_offset(good, demo_data):
    path, _ = good
    assert score_solution(path, demo_data / "aflw_val" / "annot.pkl") == pytest.approx(100 * np.sqrt(2) / 384, rel=1e-4)
    result = subprocess.run([sys.executable, "-m", "facelm", "score", str(path), str(demo_data / "aflw_val" / "annot.pkl")],
                            capture_output=True, text=True)
    assert result.returncode == 0 and float(result.stdout.strip().splitlines()[-1]) == pytest.approx(0.3683, abs=1e-3)


def _lines(path):
    return path.read_text().splitlines()


@pytest.mark.parametrize("edit, message", [
    (lambda ls: ls[1:], "have no row"),
    (lambda ls: ls + [ls[0]], "duplicates line 1"),
    (lambda ls: [ls[0].rsplit(" ", 1)[0]] + ls[1:], "line 1: 136 fields"),
    (lambda ls: [ls[0].replace(ls[0].split(" ")[5], "nan", 1)] + ls[1:], "line 1: a coordinate is NaN"),
    (lambda ls: [ls[0].replace(" ", "  ", 1)] + ls[1:], "line 1"),
    (lambda ls: ["nobody.jpg" + ls[0][ls[0].index(" "):]] + ls[1:], "not a test image"),
])
def test_malformed_solutions_are_refused_with_the_line(good, edit, message):
    path, names = good
    path.write_text("\n".join(edit(_lines(path))) + "\n")
    with pytest.raises(FacelmError, match=message) as err:
        validate_solution(path, names)
    assert "\n" not in str(err.value)


def test_zip_must_hold_only_the_solution(good, demo_data, tmp_path):
    path, names = good
    write_zip(path, tmp_path / "ok.zip")
    assert zipfile.ZipFile(tmp_path / "ok.zip").namelist() == ["solution.txt"]
    validate_solution(tmp_path / "ok.zip", names)
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as z:
        z.write(path, "solution.txt")
        z.writestr("notes.txt", "hi")
    with pytest.raises(FacelmError, match="only solution.txt"):
        validate_solution(tmp_path / "bad.zip", names)


def test_cli_validate_submission(good, demo_data, tmp_path):
    path, _ = good
    ok = subprocess.run([sys.executable, "-m", "facelm", "validate-submission", str(path), str(demo_data / "aflw_val")],
                        capture_output=True, text=True)
    assert ok.returncode == 0
    path.write_text("\n".join(_lines(path)[:-1]) + "\n")
    bad = subprocess.run([sys.executable, "-m", "facelm", "validate-submission", str(path), str(demo_data / "aflw_val")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def test_a_bad_solution_never_replaces_a_good_one(good):
    path, names = good
    before = path.read_text()
    with pytest.raises(FacelmError):
        write_solution(path, names, np.full((len(names), 68, 2), np.nan))
    assert path.read_text() == before
