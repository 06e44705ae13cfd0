"""Tuned parameters -> config: where each search-space name lives, and the tuned config file.

The tuner applies a trial's values with :func:`apply_params`, and writes the best trial's as the
tuned config (:func:`tuned_config`, ``<results_dir>/config.tuned.yaml``) that every later step reads.

Search-space names: ``lr, weight_decay, batch_size, epochs, loss, size, warmup_epochs,
ema_decay, grad_clip`` -> ``train.*``; ``gamma, gamma_mode`` -> ``preprocess.*``; any
augmentation key -> ``augment.*``; ``backbone`` -> the tuned model's name; ``width``,
``head`` -> its kwargs (and those of the ``models`` entries of that model: merged, never
replaced); dotted names (``augment.hflip_p``) are used as they are.
"""

from __future__ import annotations

import os

import yaml

from facelm.atomic import atomic_open
from facelm.config import Config, parse_config, schema
from facelm.errors import FacelmError
from facelm.layout import gamma_text

TRAIN_KEYS = {"lr", "weight_decay", "batch_size", "epochs", "loss", "size", "warmup_epochs", "ema_decay", "grad_clip"}
PREPROCESS_KEYS = {"gamma", "gamma_mode"}
MODEL_KWARGS = {"width", "head"}


def config_path_of(name: str) -> tuple[str, ...]:
    """Where a search-space name lives in the config."""
    if "." in name:
        return tuple(name.split("."))
    if name in TRAIN_KEYS:
        return ("train", name)
    if name in PREPROCESS_KEYS:
        return ("preprocess", name)
    if name in schema()["properties"]["augment"]["properties"]:
        return ("augment", name)
    if name == "backbone":
        return ("tune", "model", "name")
    if name in MODEL_KWARGS:
        return ("tune", "model", "kwargs", name)
    raise FacelmError(f"unknown tuning parameter {name!r} (see facelm.training.tune for the names)")


def _set(node: dict, path: tuple[str, ...], value) -> None:
    *parents, leaf = path
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value


def apply_params(config: Config, params: dict) -> Config:
    """A copy of ``config`` with tuned parameters set where they belong (validated again; a gamma to
    the digits its cache folder spells, :func:`facelm.layout.gamma_text`).

    A model parameter (``backbone``, ``width``, ``head``) is set on ``tune.model`` and on every
    ``models`` entry of the model the study tuned (same name), key by key: the entry keeps its
    other kwargs (``head``, ``max_stride``, ``pretrained``) and its own ``train`` overrides."""
    data = config.to_dict()
    tuned = config.tune.model.name
    for name, value in params.items():
        path = config_path_of(name)
        if path == ("preprocess", "gamma"):  # as its cache folder spells it: the cache a trial builds is the DAG's
            value = float(gamma_text(value))
        _set(data, path, value)
        if path[:2] == ("tune", "model"):
            for entry in data["models"]:
                if entry["name"] == tuned:
                    _set(entry, path[2:], value)
    return parse_config(data, "tuned parameters")


def tuned_config(config: Config, params: dict) -> Config:
    """``config`` with the best trial's ``params`` applied (:func:`apply_params`), as the steps after tuning read it.

    Its ``tune`` section stays the study's: the study is named by a hash of it, so the report finds it."""
    return apply_params(config, params).updated(tune=config.tune.to_dict())


def write_tuned_config(config: Config, params: dict, path: str | os.PathLike) -> Config:
    """Write :func:`tuned_config` as YAML (a config file every verb reads)."""
    tuned = tuned_config(config, params)
    with atomic_open(path, "w") as handle:
        yaml.safe_dump(tuned.to_dict(), handle, sort_keys=False)
    return tuned
