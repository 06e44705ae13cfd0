"""Greedy, size-budgeted ensemble selection on out-of-fold predictions."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from facelm.challenge.ensemble import build_ensemble, greedy_select
from facelm.errors import FacelmError


def _toy():
    rng = np.random.default_rng(0)
    gt = rng.uniform(100, 300, (50, 68, 2))
    good = gt + rng.normal(0, 2, gt.shape)
    other = gt + rng.normal(0, 2, gt.shape)
    bad = gt + rng.normal(0, 10, gt.shape)
    return gt, {"good": good, "other": other, "bad": bad}


def test_greedy_prefers_good_models_and_averages_independent_errors():
    gt, preds = _toy()
    counts, score = greedy_select(preds, {"good": 1, "other": 1, "bad": 1}, gt, 15, 10)
    assert "bad" not in counts and set(counts) == {"good", "other"}
    single = 100 * np.linalg.norm(preds["good"] - gt, axis=-1).mean() / 384
    assert score < single


def test_budget_limits_distinct_members():
    gt, preds = _toy()
    counts, _ = greedy_select(preds, {"good": 10, "other": 10, "bad": 1}, gt, 15, 10)
    assert len(counts) == 1 or set(counts) == {"good", "bad"} or set(counts) == {"other", "bad"}
    assert sum({"good": 10, "other": 10, "bad": 1}[m] for m in counts) <= 15
    assert greedy_select(preds, {"good": 20, "other": 20, "bad": 20}, gt, 15, 10)[0] == Counter()


def test_build_from_trained_runs(tiny_pipeline):
    config, runs = tiny_pipeline
    spec = build_ensemble(config, runs)
    assert sum(m["weight"] for m in spec["members"]) == pytest.approx(1.0)
    assert spec["total_mb"] <= config.budget_mb and spec["oof_nme_384"] > 0 and spec["val_nme_384"] > 0
    assert {c["model"] for c in spec["candidates"]} == {"pfld_025", "mobilenetv3_small_050-regression"}
    config = config.updated(ensemble={"single_model": True})
    single = build_ensemble(config, runs)
    assert len(single["members"]) == 1 and single["members"][0]["weight"] == 1.0
    smallest = min(c["size_mb"] for c in spec["candidates"])
    config = config.updated(budget_mb=smallest / 2)  # below every candidate
    with pytest.raises(FacelmError, match="budget"):
        build_ensemble(config, runs)


def test_an_unlabelled_val_folder_prints_no_val_nme(tiny_pipeline, tmp_path, monkeypatch, capsys):
    """Without val labels the spec's val_nme_384 is None: the command prints "-", it does not fail."""
    import facelm.challenge.ensemble as ensemble
    from facelm.cli import main

    config, runs = tiny_pipeline
    spec = build_ensemble(config, runs) | {"val_nme_384": None}
    monkeypatch.setattr(ensemble, "verb_config", lambda command, args: config)
    monkeypatch.setattr(ensemble, "build_ensemble", lambda config, runs: spec)
    assert main(["ensemble", "--config", "unused.yaml", "--runs", str(runs[0]), "--out", str(tmp_path / "e.json")]) == 0
    assert "val NME -" in capsys.readouterr().out
