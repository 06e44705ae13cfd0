"""The conda environment for `snakemake --sdm conda` pins exactly what `make install` pins."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _requirements() -> set[str]:
    lines = (REPO / "requirements.txt").read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def test_conda_env_has_the_same_pins():
    env = yaml.safe_load((REPO / "envs" / "facelm.yaml").read_text())
    pip_section = next(dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict))
    assert set(pip_section) == _requirements()
    assert "python=3.11" in env["dependencies"]


def test_every_requirement_is_pinned_exactly():
    for requirement in _requirements():
        assert "==" in requirement, requirement
    assert "torch==2.14.1" in _requirements() and "torchvision==0.29.1" in _requirements()


def test_every_rule_names_the_conda_env():
    for rules in (REPO / "workflow" / "rules").glob("*.smk"):
        text = rules.read_text()
        n_rules = len(re.findall(r"^\s*rule\b", text, flags=re.M))  # named, anonymous and generated rules
        assert n_rules == text.count('"../../envs/facelm.yaml"'), rules
