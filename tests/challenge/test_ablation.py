"""The ablation: every method trained with one short schedule, a markdown table, the CLI."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from facelm.challenge.ablation import run_ablation
from facelm.cli import main as cli_main
from facelm.config import parse_config


def _config(demo_data, tmp_path, methods=("pfld", "slpt_1s")):
    return parse_config({
        "data_dir": str(demo_data), "train_sets": ["synthetics_train"], "results_dir": str(tmp_path / "results"),
        "models": [{"name": "pfld_025"}],
        "train": {"size": 128, "epochs": 5, "batch_size": 8, "workers": 0},
        "ablation": {"methods": list(methods), "epochs": 1, "size": 64, "train_set": "synthetics_train"},
    })


@pytest.fixture(autouse=True)
def _two_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


@pytest.mark.slow
def test_run_ablation_trains_each_method_with_the_short_schedule(demo_data, tmp_path):
    config = _config(demo_data, tmp_path)
    out = tmp_path / "ablation.md"
    rows = run_ablation(config, out, cpu_repeats=2)

    assert [r["method"] for r in rows] == ["pfld", "slpt_1s"]
    assert [r["variant"] for r in rows] == ["pfld_100", "slpt_1s"]
    for method in ("pfld", "slpt_1s"):
        run = tmp_path / "results" / "ablation" / method
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["epochs"] == 1  # the ablation schedule, not train.epochs
        assert json.loads((run / "config.json").read_text())  # the trainer recorded what made it
        row = next(r for r in rows if r["method"] == method)
        assert row["val_nme_384"] == pytest.approx(metrics["val_nme_384"])
        assert 0 < row["mb"] <= 15 and row["cpu_ms"] > 0 and row["params"] > 0

    table = out.read_text().splitlines()
    header = next(i for i, line in enumerate(table) if line.startswith("| method"))
    body = table[header + 2:]
    assert len(body) == 2 and body[0].startswith("| pfld | pfld_100 |") and body[1].startswith("| slpt_1s | slpt_1s |")
    assert f"{rows[0]['val_nme_384']:.3f}" in body[0]
    assert "1 epoch(s) at 64 px" in out.read_text()


def test_unknown_method_is_a_one_line_cli_error(demo_data, tmp_path, capsys):
    config = _config(demo_data, tmp_path, methods=("nosuchnet",))
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config.to_dict()))
    out = tmp_path / "ablation.md"
    status = cli_main(["ablation", "--config", str(config_file), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "unknown model 'nosuchnet'" in err[0]
    assert not out.exists()
