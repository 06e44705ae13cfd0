"""Where every pipeline artefact lives, computed from the config.

The Snakefile and the ``facelm`` commands both call these functions, so a step run by
hand writes exactly where the DAG expects it. Dataset entries (``splits`` values and
``train_sets`` items) are folder names under ``data_dir`` or paths (anything with a ``/``); each gets a short,
stable *key* that names its check report, clean index and caches.

Every function that takes a key, a model id, a fold, a worker or a cache parameter also takes a
Snakemake wildcard string in its place (``check_report(config, "{key}")``), so the rules spell
their output and input patterns through these functions too (``tests/test_workflow.py`` checks
that every rule output is one of them).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from facelm.config import Config

#: The files a training run writes in its folder (:mod:`facelm.training.trainer`), by role.
RUN_FILES = {"model": "model.pt", "metrics": "metrics.json", "history": "history.csv", "config": "config.json",
             "oof_pred": "oof_pred.npy", "oof_rows": "oof_rows.npy", "val_pred": "val_pred.npy",
             "checkpoint": "last.ckpt"}
#: The files ``facelm submit`` and ``facelm model-card`` write in the submission folder, by role.
SUBMISSION_FILES = {"solution": "solution.txt", "zip": "solution.zip", "val_solution": "val_solution.txt",
                    "val_score": "val_score.json", "model_card": "MODEL_CARD.md"}


def dataset_folder(config: Config, entry: str) -> Path:
    """The folder of a dataset entry: a plain name lives under ``data_dir``; an entry with a
    ``/`` is a path (relative to the working directory, or absolute)."""
    return Path(entry) if "/" in entry else Path(config.data_dir) / entry


def dataset_key(entry: str) -> str:
    """A file-name-safe key: the entry itself for a plain name, name + path hash otherwise."""
    if "/" not in entry and entry not in (".", ".."):
        return entry
    resolved = str(Path(entry).expanduser().resolve())
    digest = hashlib.sha1(resolved.encode()).hexdigest()[:8]
    return f"{Path(resolved).name}-{digest}"


def datasets(config: Config) -> dict[str, Path]:
    """Every dataset the run reads (key -> folder): the train sets, val and test."""
    entries = [*config.train_sets, config.splits.val, config.splits.test]
    return {dataset_key(entry): dataset_folder(config, entry) for entry in entries}


def results_dir(config: Config) -> Path:
    return Path(config.results_dir)


def check_report(config: Config, key: str) -> Path:
    return results_dir(config) / "checks" / f"{key}.json"


def check_index(config: Config, key: str) -> Path:
    """The clean index ``facelm check-data --drop-bad`` writes for a dataset."""
    return results_dir(config) / "checks" / f"{key}.index"


def cache_root(config: Config, key: str) -> Path:
    return results_dir(config) / "cache" / key


def gamma_text(gamma: float) -> str:
    """A gamma as a cache folder spells it (6 significant digits: ``1.25``)."""
    return format(gamma, "g")


def cache_name(gamma: float | str, gamma_mode: str, size: int | str) -> str:
    """The folder name of a cache's parameters (``g1.25_auto_s128``); a wildcard string for
    ``gamma`` is used as it is."""
    return f"g{gamma if isinstance(gamma, str) else gamma_text(gamma)}_{gamma_mode}_s{size}"


def cache_dir(config: Config, key: str, gamma: float | str, gamma_mode: str, size: int | str) -> Path:
    """The cache of dataset ``key`` at these parameters (what ``facelm cache`` and the trainer use)."""
    return cache_root(config, key) / cache_name(gamma, gamma_mode, size)


def folds_csv(config: Config) -> Path:
    return results_dir(config) / "folds.csv"


def run_dir(config: Config, entry_id: str, fold: int | str | None) -> Path:
    return results_dir(config) / "runs" / entry_id / ("all" if fold is None else f"fold{fold}")


def run_file(run: str | Path, role: str) -> Path:
    """A file of a run folder by its role in :data:`RUN_FILES` (``run_file(run, "model")``)."""
    return Path(run) / RUN_FILES[role]


def optuna_dir(config: Config) -> Path:
    return results_dir(config) / "optuna"


def tune_done(config: Config, worker: int | str) -> Path:
    """The summary a tuning worker writes when the study holds enough trials (its rule's output)."""
    return optuna_dir(config) / f"worker{worker}.done"


def best_params(config: Config) -> Path:
    return optuna_dir(config) / "best_params.json"


def tuned_config(config: Config) -> Path:
    """The config with the best trial's values applied: what every step after tuning reads."""
    return results_dir(config) / "config.tuned.yaml"


def report(config: Config) -> Path:
    return results_dir(config) / "report.md"


def ablation_report(config: Config) -> Path:
    return results_dir(config) / "ablation.md"


def ensemble_spec(config: Config) -> Path:
    return results_dir(config) / "ensemble" / f"{config.run_name}.json"


def teacher_spec(config: Config) -> Path:
    """The teacher ensemble distillation builds from the run's fold models (any size)."""
    return results_dir(config) / "ensemble" / f"{config.run_name}.teacher.json"


def distill_dir(config: Config, fold: int | None = None) -> Path:
    return results_dir(config) / "distill" / config.distill.student.id / ("all" if fold is None else f"fold{fold}")


def submission_dir(config: Config) -> Path:
    return Path(config.submissions_dir) / config.run_name


def submission_file(config: Config, role: str) -> Path:
    """A file of the submission folder by its role in :data:`SUBMISSION_FILES`."""
    return submission_dir(config) / SUBMISSION_FILES[role]


def evaluation_folders(config: Config, extra: tuple[str, ...] | list[str] = ()) -> list[Path]:
    """The folders a training set must not copy: the val and test splits and any ``extra`` ones."""
    folders = [dataset_folder(config, config.splits.val), dataset_folder(config, config.splits.test)]
    folders += [Path(folder) for folder in extra]
    return list(dict.fromkeys(folders))
