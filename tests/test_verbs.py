"""One way to set things: a verb's short flags are aliases of config keys (config < flags < overrides),
and a flag or override the verb does not read is refused in one line."""

from __future__ import annotations

import pytest
import yaml

import facelm.training.trainer as trainer
import facelm.training.tune as tune
from facelm.cli import main
from facelm.verbs import COMMANDS, is_read, read_values


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"data_dir": str(tmp_path), "train_sets": ["synthetics_train"],
                                    "results_dir": str(tmp_path / "results"),
                                    "models": [{"name": "pfld_025"}], "train": {"epochs": 3, "lr": 0.001}}))
    return path


@pytest.fixture
def trained(monkeypatch):
    """The config and entry `facelm train` would train with (nothing is trained)."""
    seen = {}

    def fake_train(config, entry, fold, out, **kwargs):
        seen.update(config=config, entry=entry, out=out)
        return {}

    monkeypatch.setattr(trainer, "train_model", fake_train)
    return seen


def test_short_flags_beside_config_reach_the_training(config_file, trained):
    assert main(["train", "--config", str(config_file), "--epochs", "50", "--lr", "0.01", "--size", "96",
                 "--loss", "l1", "--batch-size", "4", "--workers", "0"]) == 0
    train = trained["config"].train
    assert (train.epochs, train.lr, train.size, train.loss, train.batch_size, train.workers) == (50, 0.01, 96, "l1", 4, 0)


def test_an_override_wins_over_a_flag_which_wins_over_the_config(config_file, trained):
    assert main(["train", "--config", str(config_file), "--epochs", "50", "train.epochs=7"]) == 0
    assert trained["config"].train.epochs == 7
    assert main(["train", "--config", str(config_file), "train.lr=0.5"]) == 0
    assert trained["config"].train.epochs == 3 and trained["config"].train.lr == 0.5


def test_results_dir_flag_sets_the_configs(config_file, trained, tmp_path):
    assert main(["train", "--config", str(config_file), "--results-dir", str(tmp_path / "elsewhere")]) == 0
    assert trained["config"].results_dir == str(tmp_path / "elsewhere")
    assert str(trained["out"]).startswith(str(tmp_path / "elsewhere"))


@pytest.mark.parametrize("argv, mention", [
    (["train", "ensemble.max_steps=3"], "facelm train does not read ensemble.max_steps"),
    (["distill", "tune.n_trials=3"], "facelm distill does not read tune.n_trials"),
    (["tune", "ablation.epochs=2"], "facelm tune does not read ablation.epochs"),
    (["train", "--data", "x"], "--data is for the short form"),
    (["ensemble", "train.epochs=3", "--runs", "x"], "facelm ensemble does not read train.epochs"),
    (["folds", "folds.train_folds=[0]"], "facelm folds does not read folds.train_folds"),
    (["report", "ensemble.max_steps=3"], "facelm report does not read ensemble.max_steps"),
])
def test_a_key_the_verb_does_not_read_is_refused_in_one_line(config_file, trained, capsys, argv, mention):
    verb, *rest = argv
    assert main([verb, "--config", str(config_file), *rest]) == 2
    err = capsys.readouterr().err
    assert mention in err and err.count("\n") == 1 and "config" not in trained


def test_tune_trials_is_an_alias_of_tune_n_trials(config_file, monkeypatch):
    seen = []
    monkeypatch.setattr(tune, "run_worker", lambda config, worker, url: seen.append(config) or {"study": "s", "trials": {}})
    monkeypatch.setattr(tune, "write_json", lambda *a: None)
    assert main(["tune", "--config", str(config_file), "--trials", "5"]) == 0
    assert main(["tune", "--config", str(config_file), "--trials", "5", "tune.n_trials=6"]) == 0
    assert [c.tune.n_trials for c in seen] == [5, 6]


def test_every_flag_alias_names_a_key_its_verb_reads():
    for command, verb in COMMANDS.items():
        for key in verb.flags.values():
            assert is_read(command, key), (command, key)


def test_read_values_stand_the_entry_for_models():
    config = {"train": {"epochs": 1}, "models": [{"name": "a"}, {"name": "b"}], "seed": 0}
    values = read_values("train", config, {"name": "b"})
    assert values["models"] == {"name": "b"} and values["train"] == {"epochs": 1} and values["seed"] == 0
    assert "ensemble" not in values and "train_set_options" in values


def test_the_folds_rule_reads_folds_k_and_not_the_folds_trained():
    config = {"folds": {"k": 3, "train_folds": [0]}, "seed": 0, "train_sets": ["a"], "data_dir": "d", "ensemble": {}}
    assert read_values("folds", config) == {"data_dir": "d", "train_sets": ["a"], "folds.k": 3, "seed": 0}
    assert read_values("check-data", {**config, "check": {"drop_bad": True}}) == {"check": {"drop_bad": True}}


def test_the_tuned_config_holds_the_merged_entry_and_training_reads_it(tmp_path, trained, monkeypatch):
    """`facelm tune --best --tuned` writes the config with the best trial's values applied: a tuned head
    replaces the entry's head alone (its max_stride, pretrained and own train overrides stay), the tune
    section stays the study's, and `facelm train --config <tuned>` trains that entry."""
    entry = {"name": "mobilenetv3_small_050", "kwargs": {"head": "heatmap", "max_stride": 16, "pretrained": "w.pth"},
             "train": {"epochs": 9}}
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path), "train_sets": ["synthetics_train"], "models": [entry],
                                      "results_dir": str(tmp_path / "results"),
                                      "tune": {"model": {"name": "mobilenetv3_small_050", "kwargs": {"head": "heatmap"}}}}))
    best = {"params": {"head": "regression", "lr": 0.01, "gamma": 1.23456789}, "value": 2.0, "number": 0}
    monkeypatch.setattr(tune, "best_params", lambda config, url=None: best)
    tuned_file = tmp_path / "results" / "config.tuned.yaml"
    assert main(["tune", "--config", str(config), "--best", str(tmp_path / "best.json"), "--tuned", str(tuned_file)]) == 0
    tuned = yaml.safe_load(tuned_file.read_text())
    assert tuned["models"] == [{"name": "mobilenetv3_small_050", "train": {"epochs": 9},
                                "kwargs": {"head": "regression", "max_stride": 16, "pretrained": "w.pth"}}]
    assert tuned["train"]["lr"] == 0.01 and tuned["preprocess"]["gamma"] == 1.23457  # as its cache folder spells it
    assert tuned["tune"]["model"] == {"name": "mobilenetv3_small_050", "kwargs": {"head": "heatmap"}, "train": {}}
    assert main(["train", "--config", str(tuned_file), "--out", str(tmp_path / "r")]) == 0
    got = trained["entry"]
    assert dict(got.kwargs) == {"head": "regression", "max_stride": 16, "pretrained": "w.pth"}
    assert dict(got.train) == {"epochs": 9} and trained["config"].train.lr == 0.01


def test_train_takes_no_best_params_file(config_file, capsys):
    """Tuned values travel once, in the tuned config: no second way beside it."""
    assert main(["train", "--config", str(config_file), "--params", "best.json"]) != 0
    assert "--params" in capsys.readouterr().err
