"""Where every pipeline artefact lives, computed from the config.

The Snakefile and the ``facelm`` commands both call these functions, so a step run by
hand writes exactly where the DAG expects it. Dataset entries (``splits`` values and
``train_sets`` items) are folder names under ``data_dir`` or paths (anything with a ``/``); each gets a short,
stable *key* that names its check report, clean index and caches.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from facelm.config import Config


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


def cache_name(gamma: float, gamma_mode: str, size: int) -> str:
    return f"g{gamma:g}_{gamma_mode}_s{size}"


def folds_csv(config: Config) -> Path:
    return results_dir(config) / "folds.csv"


def run_dir(config: Config, entry_id: str, fold: int | None) -> Path:
    return results_dir(config) / "runs" / entry_id / ("all" if fold is None else f"fold{fold}")


def optuna_dir(config: Config) -> Path:
    return results_dir(config) / "optuna"


def ensemble_spec(config: Config) -> Path:
    return results_dir(config) / "ensemble" / f"{config.run_name}.json"


def teacher_spec(config: Config) -> Path:
    """The teacher ensemble distillation builds from the run's fold models (any size)."""
    return results_dir(config) / "ensemble" / f"{config.run_name}.teacher.json"


def distill_dir(config: Config, fold: int | None = None) -> Path:
    return results_dir(config) / "distill" / config.distill.student.id / ("all" if fold is None else f"fold{fold}")


def submission_dir(config: Config) -> Path:
    return Path(config.submissions_dir) / config.run_name
