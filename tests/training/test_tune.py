"""Optuna tuning: parameter names, a shared SQLite study, pruning and failures recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import sqlalchemy.exc

from facelm.errors import FacelmError
from facelm.training.params import apply_params, config_path_of
from facelm.training.tune import (STORAGE_ENV, best_params, open_study, run_worker, shown, storage_url,
                                 study_exists, study_name)


def test_names_map_to_config_keys(tiny_pipeline):
    config, _ = tiny_pipeline
    tuned = apply_params(config, {"lr": 0.01, "gamma": 1.3, "rotate_deg": 5, "backbone": "pfld_100",
                                  "augment.hflip_p": 0.0, "width": 0.5})
    assert tuned.train.lr == 0.01 and tuned.preprocess.gamma == 1.3
    assert tuned.augment.rotate_deg == 5 and tuned.augment.hflip_p == 0.0
    assert tuned.tune.model.name == "pfld_100" and tuned.tune.model.kwargs["width"] == 0.5
    assert config.train.lr != 0.01  # a copy
    with pytest.raises(FacelmError, match="unknown tuning parameter 'learning_rate'"):
        config_path_of("learning_rate")
    with pytest.raises(FacelmError, match="key train.lr"):
        apply_params(config, {"lr": -1})


def test_a_trial_keeps_the_tuned_models_own_train_settings(tiny_pipeline, monkeypatch):
    """A trial trains tune.model with tune.epochs, and with the rest of tune.model.train."""
    import facelm.training.trainer as trainer
    from facelm.training.tune import objective_for

    config, _ = tiny_pipeline
    config = config.updated(tune={"epochs": 2, "model": {"name": "pfld_025", "train": {"batch_size": 4, "epochs": 5}},
                                  "search_space": {"lr": {"type": "float", "low": 1e-4, "high": 1e-2}}})
    seen = {}
    monkeypatch.setattr(trainer, "train_model", lambda cfg, entry, *a, **k: seen.update(entry=entry) or {"val_nme_384": 1.0})
    assert objective_for(config)(optuna.trial.FixedTrial({"lr": 1e-3})) == 1.0
    assert dict(seen["entry"].train) == {"batch_size": 4, "epochs": 2}

def test_workers_share_a_study_and_stop_at_n_trials(tiny_pipeline, tmp_path):
    config, _ = tiny_pipeline
    config = config.updated(results_dir=str(tmp_path / "results"),
                            tune={"enabled": True, "n_trials": 3, "epochs": 1, "model": {"name": "pfld_025"},
                                  "search_space": {"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
                                                   "loss": {"type": "categorical", "choices": ["wing", "no_such_loss"]}}})
    db = f"sqlite:///{tmp_path / 'study.db'}"
    first = run_worker(config, 0, db)
    second = run_worker(config, 1, db)  # rerun: the study is already full, nothing more runs
    total = sum(first["trials"].values())
    assert total == 3 and second["trials"] == first["trials"]
    study = open_study(config, db)
    assert {t.state for t in study.trials} <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL,
                                               optuna.trial.TrialState.PRUNED}
    failed = [t for t in study.trials if t.params.get("loss") == "no_such_loss"]
    assert all(t.state == optuna.trial.TrialState.FAIL for t in failed)  # recorded, not fatal
    best = best_params(config, db)
    if best["number"] is not None:
        assert best["params"]["loss"] == "wing" and best["value"] > 0


def test_best_params_without_complete_trials(tiny_pipeline, tmp_path):
    config, _ = tiny_pipeline
    best = best_params(config, f"sqlite:///{tmp_path / 'empty.db'}")
    assert best["params"] == {} and "no trial completed" in best["note"]
    json.dumps(best)


def test_storage_comes_from_the_environment_then_the_config_then_sqlite(tiny_pipeline, monkeypatch):
    config, _ = tiny_pipeline
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    assert storage_url(config) == f"sqlite:///{Path(config.results_dir) / 'optuna' / 'study.db'}"
    server = config.updated(tune={"storage": "postgresql://facelm@db.example:5432/optuna"})
    assert storage_url(server) == "postgresql://facelm@db.example:5432/optuna"
    monkeypatch.setenv(STORAGE_ENV, "postgresql://facelm:s3cret@db.example/optuna")
    assert storage_url(server) == "postgresql://facelm:s3cret@db.example/optuna"
    assert "s3cret" not in shown(storage_url(server))


def test_a_password_in_the_config_is_refused(tiny_pipeline, monkeypatch):
    config, _ = tiny_pipeline
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    with pytest.raises(FacelmError, match=f"tune.storage holds a password: set {STORAGE_ENV}"):
        storage_url(config.updated(tune={"storage": "postgresql://facelm:s3cret@db.example/optuna"}))
    with pytest.raises(FacelmError, match="tune.storage: not a storage URL"):
        storage_url(config.updated(tune={"storage": "db.example:5432"}))


def test_journal_storage_is_shared_by_two_processes(tiny_pipeline, tmp_path):
    """A journal file (for a shared filesystem): trials from two processes land in one study, once each."""
    config, _ = tiny_pipeline
    url = f"journal:{tmp_path / 'shared' / 'study.log'}"
    script = ("import sys, optuna\n"
              "from facelm.training.tune import open_storage\n"
              "study = optuna.load_study(study_name=sys.argv[2], storage=open_storage(sys.argv[1]))\n"
              "study.optimize(lambda t: t.suggest_float('x', -1, 1) ** 2, n_trials=5)\n")
    assert not study_exists(config, url)
    open_study(config, url)
    assert study_exists(config, url)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    workers = [subprocess.Popen([sys.executable, "-c", script, url, study_name(config)], env=env) for _ in range(2)]
    assert [w.wait(120) for w in workers] == [0, 0]
    trials = open_study(config, url).trials
    assert sorted(t.number for t in trials) == list(range(10))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)


def test_an_unreachable_server_is_one_line(tmp_path):
    config = Path(__file__).resolve().parents[2] / "config.yaml"
    result = subprocess.run([sys.executable, "-m", "facelm", "tune", "--config", str(config),
                             "--storage", "postgresql://facelm@127.0.0.1:1/optuna"], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")},
                            cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "facelm tune: error: cannot open the Optuna storage postgresql://facelm@127.0.0.1:1/optuna: connection to "
        'server at "127.0.0.1", port 1 failed: Connection refused']


def test_a_study_whose_every_trial_failed_is_an_error(tiny_pipeline, tmp_path):
    config, _ = tiny_pipeline
    config = config.updated(results_dir=str(tmp_path / "results"),
                            tune={"enabled": True, "n_trials": 2, "epochs": 1, "model": {"name": "pfld_025"},
                                  "search_space": {"loss": {"type": "categorical", "choices": ["no_such_loss"]}}})
    with pytest.raises(FacelmError, match=r"all 2 trials of study .* failed; trial 0: .*no_such_loss"):
        run_worker(config, 0, f"sqlite:///{tmp_path / 'study.db'}")


class _DuplicateTable(Exception):
    pgcode = "42P07"  # what psycopg2 sets when another session created the table first


class _SyntaxError(Exception):
    pgcode = "42601"


@pytest.mark.parametrize("orig", [_DuplicateTable, _SyntaxError])
def test_a_worker_that_loses_the_schema_race_retries_and_only_then(orig, monkeypatch):
    """Two workers on an empty PostgreSQL database both CREATE Optuna's tables; the loser is told
    DuplicateTable (a ProgrammingError, not an IntegrityError) and must retry, while any other
    programming error still fails at once."""
    from facelm.training import tune

    calls = []

    def storage(url, engine_kwargs):
        calls.append(url)
        if len(calls) == 1:
            raise sqlalchemy.exc.ProgrammingError("CREATE TABLE studies", {}, orig())
        return "opened"

    monkeypatch.setattr(tune.optuna.storages, "RDBStorage", storage)
    monkeypatch.setattr(tune.time, "sleep", lambda seconds: None)
    if orig is _DuplicateTable:
        assert tune.open_storage("postgresql://facelm@db.example/optuna") == "opened" and len(calls) == 2
    else:
        with pytest.raises(sqlalchemy.exc.ProgrammingError):
            tune.open_storage("postgresql://facelm@db.example/optuna")
        assert len(calls) == 1


def test_a_changed_search_space_is_a_new_study_and_the_old_one_is_listed(tiny_pipeline, tmp_path, monkeypatch, capsys):
    """Trials drawn from an older search space neither fill tune.n_trials nor come back as the best."""
    from facelm.cli import main

    config, _ = tiny_pipeline
    url = f"sqlite:///{tmp_path / 'study.db'}"
    monkeypatch.setenv(STORAGE_ENV, url)
    old = config.updated(tune={"search_space": {"lr": {"type": "float", "low": 1e-4, "high": 1e-2}}})
    new = config.updated(tune={"search_space": {"lr": {"type": "float", "low": 1e-3, "high": 1e-1}}})
    study = open_study(old, url)
    study.enqueue_trial({"lr": 1e-4})
    study.optimize(lambda t: t.suggest_float("lr", 1e-4, 1e-2), n_trials=1)
    assert study_name(old) != study_name(new) and study_name(old).startswith("tiny-")
    assert not study_exists(new, url) and open_study(new, url).trials == []
    assert best_params(new, url)["params"] == {}
    config_file = tmp_path / "c.yaml"
    config_file.write_text(json.dumps(new.to_dict()))
    assert main(["tune", "--config", str(config_file), "--best", str(tmp_path / "best.json")]) == 0
    assert f"study {study_name(old)} in {url} was drawn from another search space; not reused" in capsys.readouterr().err
