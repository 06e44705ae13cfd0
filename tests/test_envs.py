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
        n_rules = len(re.findall(r"^\s*(?:rule|checkpoint)\b", text, flags=re.M))  # named, anonymous, generated rules, checkpoints
        assert n_rules == text.count('"../../envs/facelm.yaml"'), rules


def _names(requirements) -> set[str]:
    return {re.split(r"[=<>!~;\[ ]", r.strip(), maxsplit=1)[0].lower() for r in requirements}


def test_a_plain_install_is_inference_only_and_the_train_extra_holds_the_rest():
    """`pip install .` pulls no torch, Snakemake or Optuna; base + [train] cover every pinned package."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    base, train = _names(project["dependencies"]), _names(project["optional-dependencies"]["train"])
    assert base == {"numpy", "opencv-python-headless", "onnxruntime", "yuface", "pillow", "tqdm"}
    assert {"torch", "timm", "snakemake", "optuna", "onnx"} <= train and not base & train
    test_only = {"pytest", "setuptools", "snakemake-executor-plugin-slurm-jobstep"}
    assert _names(_requirements()) - test_only == base | train
