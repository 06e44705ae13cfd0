"""Tuned parameters -> config: where each search-space name lives, and the best-params file.

Shared by the trainer (``facelm train --params``) and the tuner, so neither imports the other.

Search-space names: ``lr, weight_decay, batch_size, epochs, loss, size, warmup_epochs,
ema_decay, grad_clip`` -> ``train.*``; ``gamma, gamma_mode`` -> ``preprocess.*``; any
augmentation key -> ``augment.*``; ``backbone`` -> the tuned model's name; ``width``,
``head`` -> its kwargs (and those of the ``models`` entries of that model: merged, never
replaced); dotted names (``augment.hflip_p``) are used as they are.
"""

from __future__ import annotations

import os

from facelm.config import Config, parse_config, schema
from facelm.errors import FacelmError
from facelm.json_input import read_json

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
    """A copy of ``config`` with tuned parameters set where they belong (validated again).

    A model parameter (``backbone``, ``width``, ``head``) is set on ``tune.model`` and on every
    ``models`` entry of the model the study tuned (same name), key by key: the entry keeps its
    other kwargs (``head``, ``max_stride``, ``pretrained``) and its own ``train`` overrides."""
    data = config.to_dict()
    tuned = config.tune.model.name
    for name, value in params.items():
        path = config_path_of(name)
        _set(data, path, value)
        if path[:2] == ("tune", "model"):
            for entry in data["models"]:
                if entry["name"] == tuned:
                    _set(entry, path[2:], value)
    return parse_config(data, "tuned parameters")


def read_best_params(path: str | os.PathLike) -> dict:
    data = read_json(path, "best-params file")
    try:
        return dict(data["params"])
    except (ValueError, KeyError, TypeError) as err:
        raise FacelmError(f"not a best-params file ({type(err).__name__})", path) from None
