"""End to end: the Snakemake DAG on self-made demo data, to a valid solution.zip (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from facelm.data.folder import list_images
from facelm.challenge.submission_check import validate_solution

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_snakemake_runs_the_demo_end_to_end(tmp_path):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config.update(data_dir=str(tmp_path / "data"), results_dir=str(tmp_path / "results"),
                  submissions_dir=str(tmp_path / "submissions"))
    config["train"].update(size=64, epochs=2, workers=0)
    config["tune"].update(n_trials=2, epochs=1)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    snakemake = [str(Path(sys.executable).with_name("snakemake")), "--snakefile", str(REPO / "Snakefile"),
                 "--directory", str(tmp_path), "--configfile", str(tmp_path / "config.yaml"), "--cores", "2"]
    result = subprocess.run(snakemake, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    solution = tmp_path / "submissions" / "demo" / "solution.zip"
    names, points = validate_solution(solution, list_images(tmp_path / "data" / "aflw_test"))
    assert len(names) == 48 and points.shape == (48, 68, 2)
    score = json.loads((tmp_path / "submissions" / "demo" / "val_score.json").read_text())
    assert 0 < score["nme_384"] < 30
    assert (tmp_path / "results" / "report.md").exists()
    spec = json.loads((tmp_path / "results" / "ensemble" / "demo.json").read_text())
    assert spec["total_mb"] <= config["budget_mb"]
    # nothing left to do: a second dry run schedules no job
    again = subprocess.run(snakemake + ["-n"], capture_output=True, text=True, env=env)
    assert "Nothing to be done" in again.stdout + again.stderr
