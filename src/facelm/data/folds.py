"""The seeded K-fold split of the concatenated training sets (``folds.csv``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold

from facelm import layout
from facelm.atomic import atomic_open
from facelm.config import Config
from facelm.errors import FacelmError
from facelm.data.folder import FaceFolder, open_folder
from facelm.verbs import add_config_arguments, verb_config


def make_folds(n_rows: int, k: int, seed: int) -> np.ndarray:
    """Fold number of every row (sklearn KFold, shuffled with ``seed``)."""
    if n_rows < k:
        raise FacelmError(f"{n_rows} training images cannot be split into {k} folds")
    folds = np.empty(n_rows, np.int64)
    for fold, (_, held_out) in enumerate(KFold(k, shuffle=True, random_state=seed).split(np.arange(n_rows))):
        folds[held_out] = fold
    return folds


def train_folders(config: Config) -> list[tuple[str, FaceFolder]]:
    """(key, folder) of every train set, with its clean index applied when check-data wrote one."""
    out = []
    for entry in config.train_sets:
        key = layout.dataset_key(entry)
        index = layout.check_index(config, key)
        out.append((key, open_folder(layout.dataset_folder(config, entry), index if index.exists() else None)))
    return out


def train_landmarks(config: Config) -> np.ndarray:
    """Ground truth (N, 68, 2) of the concatenated train sets, in their own frames, row order."""
    return np.concatenate([faces.landmarks for _, faces in train_folders(config)])


def train_table(config: Config) -> pd.DataFrame:
    """Rows of the concatenated train sets (clean index applied): set key and image name."""
    parts = [pd.DataFrame({"set": key, "name": faces.names}) for key, faces in train_folders(config)]
    table = pd.concat(parts, ignore_index=True)
    table.insert(0, "row", np.arange(len(table)))
    return table


def write_folds(config: Config, out_csv: str | os.PathLike) -> pd.DataFrame:
    table = train_table(config)
    table["fold"] = make_folds(len(table), config.folds.k, config.seed)
    with atomic_open(out_csv, "w") as handle:
        table.to_csv(handle, index=False)
    return table


def read_folds(path: str | os.PathLike) -> pd.DataFrame:
    try:
        table = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise FacelmError(f"cannot read folds ({type(err).__name__})", path) from None
    if list(table.columns) != ["row", "set", "name", "fold"]:
        raise FacelmError("folds file must have columns row,set,name,fold", path)
    return table


def add_arguments(parser) -> None:
    add_config_arguments(parser, "folds")
    parser.add_argument("--out", help="folds.csv (default <results_dir>/folds.csv)")


def main(args) -> int:
    config = verb_config("folds", args)
    out = Path(args.out) if args.out else layout.folds_csv(config)
    table = write_folds(config, out)
    print(f"{len(table)} rows in {config.folds.k} folds -> {out}")
    return 0
