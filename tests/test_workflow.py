"""The Snakemake DAG: validated config, the whole pipeline behind `submission`, thin rules."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def snakemake(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(
        [str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--directory", str(cwd), *args],
        capture_output=True, text=True, env=env,
    )


@pytest.fixture
def workdir(tmp_path) -> Path:
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    return tmp_path


def test_dry_run_of_submission_lists_the_whole_dag(workdir):
    result = snakemake("-n", "submission", "--configfile", str(workdir / "config.yaml"), cwd=workdir)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    for rule in ("demo_data", "check_data", "gamma_cache", "folds", "tune_worker", "tune_best",
                 "train", "ensemble", "submission"):
        assert f"rule {rule}:" in out, rule


def test_default_target_adds_the_report(workdir):
    result = snakemake("-n", "--configfile", str(workdir / "config.yaml"), cwd=workdir)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "rule report:" in result.stdout


def test_ablation_target(workdir):
    result = snakemake("-n", "ablation", "--configfile", str(workdir / "config.yaml"), cwd=workdir)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "rule ablation:" in result.stdout


@pytest.mark.parametrize("override, key", [("train={'epochz': 3}", "train.epochz"), ("budget_mb=big", "budget_mb")])
def test_bad_config_stops_before_any_rule_with_one_line(workdir, override, key):
    result = snakemake("-n", "--configfile", str(workdir / "config.yaml"), "--config", override, cwd=workdir)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("facelm:")]
    assert len(errors) == 1 and key in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (workdir / "results" / "checks").exists()


def test_challenge_mode_with_distillation_submits_the_student(workdir):
    (workdir / "distill.yaml").write_text("distill: {enabled: true}\nensemble: {single_model: true}\n")
    result = snakemake("-n", "-p", "submission", "--configfile", str(workdir / "config.yaml"), str(workdir / "distill.yaml"),
                       cwd=workdir)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "rule teacher:" in out and "rule distill:" in out
    ensemble_cmd = next(line for line in out.splitlines() if " ensemble --config" in line and "--teacher" not in line)
    assert "--runs results/distill/" in ensemble_cmd and "results/runs/" not in ensemble_cmd
