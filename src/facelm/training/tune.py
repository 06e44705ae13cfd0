"""Optuna tuning on a shared SQLite study (``<results_dir>/optuna/study.db``).

Each worker process (``facelm tune --worker K``; Snakemake runs ``tune.workers`` of them in
parallel) draws trials with a seeded TPE sampler until the study holds ``tune.n_trials``
finished trials. A trial trains ``tune.model`` on fold ``tune.fold`` for ``tune.epochs``
epochs; its per-epoch validation NME feeds the median pruner. Failed trials are recorded as
FAIL and the worker goes on. ``--best`` writes the best complete trial's parameters, which
the final training applies with :func:`apply_params` (``facelm train --params``).
Search-space names are mapped to config keys by :mod:`facelm.training.params`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import optuna

from facelm import layout
from facelm.atomic import write_json
from facelm.config import Config, load_config
from facelm.data.limits import positive_int
from facelm.errors import FacelmError
from facelm.training.params import apply_params, config_path_of

def suggest(trial: optuna.Trial, space: dict) -> dict:
    params = {}
    for name, spec in space.items():
        if spec["type"] == "float":
            params[name] = trial.suggest_float(name, spec["low"], spec["high"], log=spec.get("log", False))
        elif spec["type"] == "int":
            params[name] = trial.suggest_int(name, int(spec["low"]), int(spec["high"]), log=spec.get("log", False))
        else:
            params[name] = trial.suggest_categorical(name, spec["choices"])
    return params


def sqlite_storage(path: Path) -> optuna.storages.RDBStorage:
    path.parent.mkdir(parents=True, exist_ok=True)
    # a busy timeout lets several worker processes share the SQLite file
    return optuna.storages.RDBStorage(f"sqlite:///{path}", engine_kwargs={"connect_args": {"timeout": 60}})


def open_study(config: Config, db: Path, seed: int = 0) -> optuna.Study:
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return optuna.create_study(
            study_name=config.run_name, storage=sqlite_storage(db), direction="minimize", load_if_exists=True,
            sampler=optuna.samplers.TPESampler(seed=seed),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
        )
    except SQLAlchemyError as err:
        cause = getattr(err, "orig", None) or err
        raise FacelmError(f"not an Optuna SQLite study ({type(cause).__name__}: {cause})", db) from None


def objective_for(config: Config) -> callable:
    from facelm.training.trainer import train_model

    tune = config.tune
    for name in tune.search_space:
        config_path_of(name)  # unknown names fail before any trial

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial, tune.search_space)
        trial_config = apply_params(config, params)
        out = layout.optuna_dir(config) / "trials" / str(trial.number)

        def report(epoch: int, val_nme: float) -> None:
            trial.report(val_nme, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()

        entry = dataclasses.replace(trial_config.tune.model, train={"epochs": tune.epochs})
        metrics = train_model(trial_config, entry, tune.fold, out, on_epoch=report)
        trial.set_user_attr("oof_nme_384", metrics.get("oof_nme_384"))
        return metrics["val_nme_384"]

    return objective


def run_worker(config: Config, worker: int, db: Path) -> dict:
    study = open_study(config, db, seed=config.seed + worker)
    n_trials = config.tune.n_trials
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    if len(study.get_trials(states=states)) < n_trials:
        study.optimize(objective_for(config), callbacks=[optuna.study.MaxTrialsCallback(n_trials, states=states)],
                       catch=(Exception,), gc_after_trial=True)
    counts = {s.name: len(study.get_trials(states=(s,))) for s in states}
    return {"worker": worker, "study": study.study_name, "trials": counts}


def best_params(config: Config, db: Path) -> dict:
    study = open_study(config, db)
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        return {"params": {}, "value": None, "number": None, "note": "no trial completed; training uses config.yaml"}
    best = min(complete, key=lambda t: t.value)
    return {"params": best.params, "value": best.value, "number": best.number, "n_complete": len(complete)}


def add_arguments(parser) -> None:
    parser.add_argument("--config", required=True)
    parser.add_argument("--worker", type=int, default=0, help="worker number (seeds its sampler)")
    parser.add_argument("--trials", type=positive_int, help="override tune.n_trials")
    parser.add_argument("--study-db", help="SQLite file (default <results_dir>/optuna/study.db)")
    parser.add_argument("--best", help="write the best parameters to this JSON instead of running trials")


def main(args) -> int:
    config = load_config(args.config)
    if args.trials is not None:
        config = config.updated(tune={"n_trials": args.trials})
    db = Path(args.study_db) if args.study_db else layout.optuna_dir(config) / "study.db"
    if args.best:
        best = best_params(config, db)
        write_json(args.best, best)
        print(f"best trial {best['number']}: val NME {best['value']} params {best['params']} -> {args.best}")
        return 0
    summary = run_worker(config, args.worker, db)
    write_json(layout.optuna_dir(config) / f"worker{args.worker}.done", summary)
    print(f"study {summary['study']} in {db}: {summary['trials']}")
    return 0
