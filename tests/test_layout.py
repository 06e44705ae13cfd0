"""Artefact paths shared by the Snakefile and the CLI."""

from __future__ import annotations

from facelm import layout
from facelm.config import parse_config


def test_dataset_keys_are_stable_and_file_name_safe(tmp_path):
    assert layout.dataset_key("aflw_val") == "aflw_val"
    key = layout.dataset_key(str(tmp_path / "300w_train"))
    assert key.startswith("300w_train-") and "/" not in key
    assert key == layout.dataset_key(str(tmp_path / "300w_train"))
    assert key != layout.dataset_key(str(tmp_path / "other" / "300w_train"))


def test_paths_follow_the_config():
    config = parse_config({"data_dir": "data", "results_dir": "res", "submissions_dir": "subs", "run_name": "r1",
                           "splits": {"train": "t", "val": "v", "test": "x"}, "train_sets": ["t", "/abs/extra"],
                           "models": [{"name": "m", "kwargs": {"head": "heatmap"}}, {"name": "pfld_025"}]})
    folders = layout.datasets(config)
    assert folders["t"].as_posix() == "data/t" and folders["v"].as_posix() == "data/v"
    assert any(p.as_posix() == "/abs/extra" for p in folders.values())
    assert layout.dataset_folder(config, "prepared/fs100").as_posix() == "prepared/fs100"
    assert layout.check_index(config, "v").as_posix() == "res/checks/v.index"
    assert layout.cache_name(1.0, "fixed", 96) == "g1_fixed_s96"
    assert layout.cache_name(1.25, "auto", 128) == "g1.25_auto_s128"
    assert [m.id for m in config.models] == ["m-heatmap", "pfld_025"]
    assert layout.run_dir(config, "m", 2).as_posix() == "res/runs/m/fold2"
    assert layout.submission_dir(config).as_posix() == "subs/r1"


def test_layout_functions_take_wildcard_strings_for_the_rules():
    config = parse_config({"data_dir": "data", "results_dir": "res", "submissions_dir": "subs", "run_name": "r1",
                           "train_sets": ["t"], "models": [{"name": "pfld_025"}]})
    assert layout.check_report(config, "{key}").as_posix() == "res/checks/{key}.json"
    assert layout.cache_dir(config, "{key}", "{gamma}", "{mode}", "{size}").as_posix() == "res/cache/{key}/g{gamma}_{mode}_s{size}"
    assert layout.cache_dir(config, "v", 1.0, "fixed", 96).as_posix() == "res/cache/v/g1_fixed_s96"
    assert layout.run_file(layout.run_dir(config, "{model_id}", "{fold}"), "model").as_posix() == "res/runs/{model_id}/fold{fold}/model.pt"
    assert layout.tune_done(config, "{worker}").as_posix() == "res/optuna/worker{worker}.done"
    assert layout.submission_file(config, "zip").as_posix() == "subs/r1/solution.zip"
