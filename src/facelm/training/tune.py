"""Optuna tuning on one study shared by every worker, wherever it runs.

Each worker process (``facelm tune --worker K``; Snakemake runs ``tune.workers`` of them in
parallel, on one machine or as cluster jobs) draws trials with a seeded TPE sampler until the
study holds ``tune.n_trials`` finished trials. A trial trains ``tune.model`` on fold
``tune.fold`` for ``tune.epochs`` epochs; its per-epoch validation NME feeds the median pruner.
Failed trials are recorded as FAIL (their error in the trial's ``error`` attribute) and the worker
goes on; a study whose every finished trial failed is an error (exit 2), not an empty success.
``--best`` writes the best complete trial's parameters, and ``--tuned`` the config with them
applied (:func:`facelm.training.params.tuned_config`), which every later step reads as its
``--config``. Search-space names are mapped to config keys by :mod:`facelm.training.params`.

The study is named by the run plus a hash of its search space and tuned model
(:func:`study_name`): after a change of either, the run starts a new study, and ``facelm tune``
lists the older ones instead of reusing their trials.

The study lives in an Optuna storage (:func:`storage_url`): SQLite under the results folder by
default (processes on one machine), a PostgreSQL server (``postgresql://user@host/db``; workers on
many machines), or a journal file (``journal:PATH`` on a shared filesystem). Credentials never go
in config.yaml: ``FACELM_OPTUNA_STORAGE`` (the whole URL) or libpq's ``~/.pgpass`` / ``PGPASSWORD``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path

import optuna
import sqlalchemy.engine
import sqlalchemy.exc

from facelm import layout
from facelm.atomic import write_json
from facelm.config import Config
from facelm.data.limits import positive_int
from facelm.errors import FacelmError
from facelm.training.params import apply_params, config_path_of, write_tuned_config
from facelm.verbs import add_config_arguments, verb_config

#: the whole storage URL, credentials included; replaces tune.storage when set
STORAGE_ENV = "FACELM_OPTUNA_STORAGE"

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


def storage_url(config: Config) -> str:
    """Where the study lives: ``FACELM_OPTUNA_STORAGE``, else ``tune.storage``, else SQLite under
    ``<results_dir>/optuna/``. A password written in ``tune.storage`` is refused (config.yaml is in git)."""
    from_env = os.environ.get(STORAGE_ENV, "").strip()
    if from_env:
        return from_env
    url = config.tune.storage
    if not url:
        return f"sqlite:///{layout.optuna_dir(config) / 'study.db'}"
    if not url.startswith("journal:") and _url(url, "tune.storage").password is not None:
        raise FacelmError(f"tune.storage holds a password: set {STORAGE_ENV} or use ~/.pgpass / PGPASSWORD instead")
    return url


def shown(url: str) -> str:
    """The URL without its password, for logs and reports."""
    return url if url.startswith("journal:") else _url(url, STORAGE_ENV).render_as_string(hide_password=True)


def _url(url: str, where: str) -> sqlalchemy.engine.URL:
    try:
        return sqlalchemy.engine.make_url(url)
    except Exception:  # sqlalchemy raises ArgumentError or ValueError for different kinds of bad URL
        raise FacelmError(f"{where}: not a storage URL (sqlite:///PATH, postgresql://USER@HOST/DB or journal:PATH)") from None


def open_storage(url: str) -> optuna.storages.BaseStorage:
    if url.startswith("journal:"):
        path = Path(url.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    parsed = _url(url, "optuna storage")
    if parsed.get_backend_name() == "sqlite":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # a busy timeout lets several worker processes share the SQLite file
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
    # a server: drop connections the server or a firewall closed while a long trial trained
    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as err:
            # workers starting together on an empty database race to create Optuna's tables
            # (PostgreSQL answers the loser with a unique violation or a DuplicateTable / DuplicateObject);
            # the loser retries and finds them made
            if attempt == 4 or not _lost_schema_race(err):
                raise
            time.sleep(0.5 + attempt)
        except sqlalchemy.exc.OperationalError as err:
            raise FacelmError(f"cannot open the Optuna storage {shown(url)}: {str(err.orig).strip().splitlines()[0]}") from None


def _lost_schema_race(err: sqlalchemy.exc.DBAPIError) -> bool:
    """Whether a server refused a CREATE because another worker made the same table, type or row first."""
    if isinstance(err, sqlalchemy.exc.IntegrityError):
        return True
    # PostgreSQL's SQLSTATE 42P07 duplicate_table, 42710 duplicate_object (Optuna's enum types)
    return getattr(err.orig, "pgcode", None) in {"42P07", "42710"}


def study_name(config: Config) -> str:
    """``<run_name>-<hash>``: the run plus 8 hex digits of its search space and tuned model. A changed
    search space is a new study, so trials drawn from the old space neither count towards
    ``tune.n_trials`` nor come back as the best."""
    tune = config.tune.to_dict()
    space = json.dumps({"search_space": tune["search_space"], "model": tune["model"]}, sort_keys=True)
    return f"{config.run_name}-{hashlib.sha256(space.encode()).hexdigest()[:8]}"


def _study_names(config: Config, url: str) -> list[str]:
    """The studies in the storage (none, without creating a SQLite or journal file that is not there)."""
    local = url.removeprefix("journal:") if url.startswith("journal:") else (
        _url(url, "optuna storage").database if url.startswith("sqlite") else None)
    if local is not None and not Path(local).exists():
        return []
    with _storage_errors(url):
        return optuna.study.get_all_study_names(open_storage(url))


def study_exists(config: Config, url: str) -> bool:
    """Whether the run's study (for its current search space) is in the storage."""
    return study_name(config) in _study_names(config, url)


def older_studies(config: Config, url: str) -> list[str]:
    """The run's studies for other search spaces (and one named by the run alone, as they once were)."""
    pattern = re.compile(rf"{re.escape(config.run_name)}(-[0-9a-f]{{8}})?")
    return [name for name in _study_names(config, url) if pattern.fullmatch(name) and name != study_name(config)]


@contextlib.contextmanager
def _storage_errors(url: str):
    """A storage that is not Optuna's (a garbage SQLite file, a foreign schema) -> one line naming it."""
    try:
        yield
    except sqlalchemy.exc.SQLAlchemyError as err:
        cause = getattr(err, "orig", None) or err
        raise FacelmError(f"not an Optuna study ({type(cause).__name__}: {cause})", shown(url)) from None


def open_study(config: Config, url: str | None = None, seed: int = 0) -> optuna.Study:
    url = url or storage_url(config)
    with _storage_errors(url):
        return optuna.create_study(
            study_name=study_name(config), storage=open_storage(url), direction="minimize",
            load_if_exists=True, sampler=optuna.samplers.TPESampler(seed=seed),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
        )


def objective_for(config: Config) -> callable:
    from facelm.training.trainer import train_model

    tune = config.tune
    for name in tune.search_space:
        config_path_of(name)  # unknown names fail before any trial

    def run_trial(trial: optuna.Trial) -> float:
        params = suggest(trial, tune.search_space)
        trial_config = apply_params(config, params)
        out = layout.optuna_dir(config) / "trials" / str(trial.number)

        def report(epoch: int, val_nme: float) -> None:
            trial.report(val_nme, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()

        model = trial_config.tune.model
        entry = dataclasses.replace(model, train={**model.train, "epochs": tune.epochs})  # its own train settings kept
        metrics = train_model(trial_config, entry, tune.fold, out, on_epoch=report)
        trial.set_user_attr("oof_nme_384", metrics.get("oof_nme_384"))
        return metrics["val_nme_384"]

    def objective(trial: optuna.Trial) -> float:
        try:
            return run_trial(trial)
        except optuna.TrialPruned:
            raise
        except Exception as err:  # kept for the all-failed check; Optuna then marks the trial FAIL
            lines = str(err).strip().splitlines()
            trial.set_user_attr("error", f"{type(err).__name__}: {lines[0] if lines else ''}")
            raise

    return objective


def run_worker(config: Config, worker: int, url: str | None = None) -> dict:
    study = open_study(config, url, seed=config.seed + worker)
    n_trials = config.tune.n_trials
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    if len(study.get_trials(states=states)) < n_trials:
        study.optimize(objective_for(config), callbacks=[optuna.study.MaxTrialsCallback(n_trials, states=states)],
                       catch=(Exception,), gc_after_trial=True)
    counts = {s.name: len(study.get_trials(states=(s,))) for s in states}
    if counts["FAIL"] and not counts["COMPLETE"] and not counts["PRUNED"]:
        first = study.get_trials(states=(optuna.trial.TrialState.FAIL,))[0]
        raise FacelmError(f"all {counts['FAIL']} trials of study {study.study_name} failed; trial {first.number}: "
                          f"{first.user_attrs.get('error', 'no error recorded')}")
    return {"worker": worker, "study": study.study_name, "trials": counts}


def best_params(config: Config, url: str | None = None) -> dict:
    study = open_study(config, url)
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        return {"params": {}, "value": None, "number": None, "note": "no trial completed; training uses config.yaml"}
    best = min(complete, key=lambda t: t.value)
    return {"params": best.params, "value": best.value, "number": best.number, "n_complete": len(complete)}


def add_arguments(parser) -> None:
    add_config_arguments(parser, "tune")
    parser.add_argument("--worker", type=int, default=0, help="worker number (seeds its sampler)")
    parser.add_argument("--trials", type=positive_int, help="sets tune.n_trials (wins over --config)")
    parser.add_argument("--storage", help=f"Optuna storage URL (default: ${STORAGE_ENV}, tune.storage, or "
                                          "sqlite:///<results_dir>/optuna/study.db)")
    parser.add_argument("--best", help="write the best parameters to this JSON instead of running trials")
    parser.add_argument("--tuned", help="with --best: also write the config with them applied (YAML; what later steps read)")


def main(args) -> int:
    config = verb_config("tune", args)
    if args.tuned and not args.best:
        raise FacelmError("--tuned goes with --best (it writes the best trial's values applied to the config)")
    url = args.storage or storage_url(config)
    for old in older_studies(config, url):
        print(f"facelm tune: study {old} in {shown(url)} was drawn from another search space; not reused "
              f"(this one is {study_name(config)})", file=sys.stderr)
    if args.best:
        best = best_params(config, url)
        write_json(args.best, best)
        print(f"best trial {best['number']}: val NME {best['value']} params {best['params']} -> {args.best}")
        if args.tuned:
            write_tuned_config(config, best["params"], args.tuned)
            print(f"config with the tuned values applied -> {args.tuned}")
        return 0
    summary = run_worker(config, args.worker, url)
    write_json(layout.tune_done(config, args.worker), summary)
    print(f"study {summary['study']} in {shown(url)}: {summary['trials']}")
    return 0
