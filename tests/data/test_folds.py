"""Seeded, deterministic K-fold split."""

from __future__ import annotations

import numpy as np

from facelm.config import parse_config
from facelm.data.folds import make_folds, read_folds, write_folds


def test_folds_are_balanced_and_seeded():
    a, b, c = make_folds(100, 5, 0), make_folds(100, 5, 0), make_folds(100, 5, 1)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.bincount(a).tolist() == [20] * 5


def test_folds_csv(demo_data, tmp_path):
    config = parse_config({"data_dir": str(demo_data), "train_sets": ["synthetics_train"], "models": [{"name": "pfld"}],
                              "folds": {"k": 4}})
    write_folds(config, tmp_path / "folds.csv")
    table = read_folds(tmp_path / "folds.csv")
    assert len(table) == 48 and table["row"].tolist() == list(range(48))
    assert set(table["fold"]) == {0, 1, 2, 3} and table["name"].iloc[0] == "000000.jpg"
