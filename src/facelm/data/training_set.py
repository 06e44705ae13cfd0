"""The faces one run trains on and is scored on, built once from the config (:class:`TrainingSet`).

The *training view* (:meth:`TrainingSet.train_view`) is what an epoch holds: every training row
of every ``train_sets`` entry, as many times as its set's ``repeat`` times its pose copies
(``train.pose_balance``), each sample carrying its set's per-point loss weights
(``"point_weights"``, (68,) float32; :func:`set_point_weights`). Every augmentation backend
consumes this one view; per-sample augmentation (albumentations, in the DataLoader workers) is a
separate choice the caller makes, the batch backend leaving the samples raw and augmenting whole
batches later. The *evaluation views* (held-out rows, validation) hold each face once, raw.

Rows are numbered over the concatenated ``train_sets`` (the numbering of ``folds.csv``).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
from torch.utils.data import ConcatDataset

from facelm import layout
from facelm.config import Config, Train
from facelm.data.cache import ensure_cache
from facelm.data.dataset import LandmarkDataset
from facelm.data.folds import make_folds, read_folds
from facelm.data.pose import YAW_BINS, pose_from_landmarks, yaw_bin
from facelm.errors import FacelmError
from facelm.landmarks68 import CHALLENGE_SIZE, GROUPS, NUM_POINTS, REGIONS

#: The key of a sample's per-point loss weights (see :mod:`facelm.models.base`).
POINT_WEIGHTS = "point_weights"
#: ``train_set_options.*.point_weights`` regions: left and right together, as a weight vector must
#: be mirror-symmetric to survive a flip.
WEIGHT_REGIONS = REGIONS
#: The most copies ``train.pose_balance`` gives one face per epoch.
MAX_POSE_COPIES = 8


def set_point_weights(options: Mapping, jaw_convention: str) -> np.ndarray:
    """(68,) loss weights of every sample of one train set: its ``point_weights`` per region (1
    elsewhere), and 0 on the jaw when ``train.jaw_convention`` names a convention the set does not
    follow (a set of ``unspecified`` convention counts as following every one)."""
    weights = np.ones(NUM_POINTS, np.float32)
    for region, weight in options.get("point_weights", {}).items():
        weights[WEIGHT_REGIONS[region]] = weight
    convention = options.get("convention", "unspecified")
    if jaw_convention != "any" and convention not in ("unspecified", jaw_convention):
        weights[GROUPS["jaw"]] = 0.0
    return weights


def label_yaw_deg(landmarks_norm: np.ndarray) -> np.ndarray:
    """|yaw| in degrees of each face's labels (N, 68, 2) normalised, as evaluation bins it."""
    return np.abs(np.degrees(pose_from_landmarks(landmarks_norm * CHALLENGE_SIZE, CHALLENGE_SIZE)[:, 0]))


def pose_copies(yaw_deg: np.ndarray, pose_balance: float) -> np.ndarray:
    """Copies per epoch of each face under ``train.pose_balance``: a face whose label yaw falls in a
    rarer bin (:data:`facelm.data.pose.YAW_BINS`) appears ``round((n_largest / n_bin) ** pose_balance)``
    times (at most :data:`MAX_POSE_COPIES`), so turned faces are not drowned by frontal ones."""
    if pose_balance <= 0 or not len(yaw_deg):
        return np.ones(len(yaw_deg), np.int64)
    bins = yaw_bin(yaw_deg)
    counts = np.bincount(bins, minlength=len(YAW_BINS)).astype(np.float64)
    per_bin = np.ones_like(counts)
    present = counts > 0
    per_bin[present] = np.round((counts.max() / counts[present]) ** pose_balance)
    return np.clip(per_bin, 1, MAX_POSE_COPIES).astype(np.int64)[bins]


def cached_dataset(config: Config, entry: str, size: int) -> LandmarkDataset:
    """The dataset of a ``train_sets`` / ``splits`` entry at ``size``, its cache built if missing or
    stale (from the clean index ``check-data`` wrote, when there is one)."""
    key = layout.dataset_key(entry)
    index = layout.check_index(config, key)
    pre = config.preprocess
    cache = ensure_cache(layout.dataset_folder(config, entry), layout.cache_root(config, key), pre.gamma,
                         pre.gamma_mode, size, index if index.exists() else None)
    return LandmarkDataset(cache)


def fold_of_rows(config: Config, n_rows: int) -> np.ndarray:
    """The fold of every row: from ``folds.csv`` when the DAG wrote it, else the same seeded split."""
    path = layout.folds_csv(config)
    if not path.exists():
        return make_folds(n_rows, config.folds.k, config.seed)
    table = read_folds(path)
    if len(table) != n_rows:
        raise FacelmError(f"folds file has {len(table)} rows but the train sets have {n_rows}; rerun `facelm folds`",
                          path)
    return table["fold"].to_numpy()


class TrainingSet:
    """The train sets of one run (rows split by ``fold``: None = train on every row) and its validation set."""

    def __init__(self, config: Config, fold: int | None, settings: Train):
        self.entries = list(config.train_sets)
        self.sets = [cached_dataset(config, entry, settings.size) for entry in self.entries]
        for entry, dataset in zip(self.entries, self.sets):
            if not dataset.labelled:
                raise FacelmError("training set has no labels (annot.pkl)", layout.dataset_folder(config, entry))
        options = [config.train_set_options.get(entry, {}) for entry in self.entries]
        self.point_weights = [set_point_weights(o, settings.jaw_convention) for o in options]
        self.repeats = np.array([o.get("repeat", 1) for o in options], np.int64)
        self.pose_balance = settings.pose_balance
        self.augment = config.augment
        self.seed = config.seed
        self.offsets = np.cumsum([0] + [len(d) for d in self.sets])
        n_rows = int(self.offsets[-1])
        if fold is None:
            self.train_rows, self.oof_rows = np.arange(n_rows), np.arange(0)
        else:
            if not 0 <= fold < config.folds.k:
                raise FacelmError(f"fold {fold} is outside 0..{config.folds.k - 1}")
            fold_of_row = fold_of_rows(config, n_rows)
            self.train_rows = np.flatnonzero(fold_of_row != fold)
            self.oof_rows = np.flatnonzero(fold_of_row == fold)
        self.val = cached_dataset(config, config.splits.val, settings.size)
        #: samples per epoch of each training row: its set's ``repeat`` times its pose copies
        self.copies = self._pose_copies() * self.repeats[self.set_of_rows(self.train_rows)]

    def set_of_rows(self, rows: np.ndarray) -> np.ndarray:
        """Index into ``train_sets`` of each row."""
        return np.searchsorted(self.offsets, rows, side="right") - 1

    def _pose_copies(self) -> np.ndarray:
        if self.pose_balance <= 0:
            return np.ones(len(self.train_rows), np.int64)
        return pose_copies(label_yaw_deg(self.landmarks_norm(self.train_rows)), self.pose_balance)

    def train_view(self, per_sample_augment: bool) -> ConcatDataset:
        """An epoch's samples: every training row ``copies`` times, with its set's point weights;
        with ``per_sample_augment`` each sample augmented in ``__getitem__`` (copy ``c`` of a row seeded
        ``seed + c``, so copies differ), otherwise raw (the batch backend augments whole batches)."""
        copies = self.copies
        owner = self.set_of_rows(self.train_rows)
        augment = self.augment if per_sample_augment else None
        parts = []
        for i, base in enumerate(self.sets):
            local = self.train_rows[owner == i] - self.offsets[i]
            row_copies = copies[owner == i]
            extra = {POINT_WEIGHTS: self.point_weights[i]}
            for copy_no in range(int(row_copies.max(initial=0))):
                parts.append(LandmarkDataset(base.cache_dir, local[row_copies > copy_no], augment, self.seed + copy_no,
                                             extra))
        return ConcatDataset(parts)

    def eval_view(self, rows: np.ndarray) -> ConcatDataset:
        """The datasets of ``rows``, each face once, raw, in row order."""
        owner = self.set_of_rows(rows)
        parts = [LandmarkDataset(base.cache_dir, rows[owner == i] - self.offsets[i])
                 for i, base in enumerate(self.sets) if (owner == i).any()]
        return ConcatDataset(parts)

    def epoch_summary(self) -> dict:
        """What an epoch holds before batching: ``train_samples_per_epoch`` and its split per set."""
        per_set = np.bincount(self.set_of_rows(self.train_rows), weights=self.copies, minlength=len(self.sets))
        split = {entry: int(n) for entry, n in zip(self.entries, per_set)}
        return {"train_samples_per_epoch": int(per_set.sum()), "train_samples_per_set": split}

    def landmarks_norm(self, rows: np.ndarray) -> np.ndarray:
        return np.concatenate([d.landmarks_norm() for d in self.sets])[rows]

    def source_size(self, rows: np.ndarray) -> np.ndarray:
        """Source crop side of every row (to map normalised points to the original frame)."""
        sizes = np.concatenate([np.full(len(d), d.source_size) for d in self.sets])
        return sizes[rows].astype(np.float32)

