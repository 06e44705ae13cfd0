"""Torch datasets over the image cache, and the loaders whose draws depend only on ``(seed, epoch, index)``.

Items are ``{"image": float32 (3,S,S) 0..255 RGB, "landmarks": float32 (68,2) normalised
u = x / S, "index": int}``; ``"landmarks"`` is absent for unlabelled data and ``"index"``
is the row of the sample in its cache, whatever ``indices`` subset is used.

Reproducibility: a sample's augmentation is seeded from ``(seed, epoch, index)`` and the
shuffling order of :func:`make_loader` from ``(seed, epoch)``, so a run gives the same
batches whatever the number of DataLoader workers. The epoch travels to the (persistent,
spawned) workers inside the sample keys, see :class:`EpochKeyed`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Sampler, Subset

from facelm.data.augment import build_augment
from facelm.data.cache import open_cache
from facelm.errors import FacelmError


def derive_seed(*values: int) -> int:
    """A 32-bit seed that depends only on ``values`` (e.g. ``(seed, epoch, index)``)."""
    return int(np.random.SeedSequence([int(v) & 0xFFFFFFFF for v in values]).generate_state(1)[0])


class FaceItems(Dataset):
    """Shared item building (the cache's datasets, and the JPEG baseline of ``benchmarks/loader.py``): optional augmentation, channels-first float image, normalised points."""

    def __init__(self, size: int, augment: Mapping[str, Any] | None, seed: int):
        self.size = int(size)
        self.seed = int(seed)
        self.epoch = 0
        self.augment = build_augment(augment, self.size) if augment is not None else None

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of ``epoch`` (call before the epoch's iterator is created)."""
        self.epoch = int(epoch)

    def _item(self, image: np.ndarray, landmarks: np.ndarray | None, index: int) -> dict[str, Any]:
        if self.augment is not None:
            # Unlabelled data still goes through the same (point-aware) pipeline; dummy points are dropped.
            points = landmarks if landmarks is not None else np.zeros((68, 2), np.float32)
            image, points = self.augment(image, points, seed=derive_seed(self.seed, self.epoch, index))
            landmarks = points if landmarks is not None else None
        item: dict[str, Any] = {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)),
            "index": int(index),
        }
        if landmarks is not None:
            item["landmarks"] = torch.from_numpy(np.asarray(landmarks, dtype=np.float32) / self.size)
        return item


class LandmarkDataset(FaceItems):
    """Samples of one cache folder (its rows read on demand; each worker opens the file on first use).

    Only this dataset's rows' landmarks are kept (``rows`` x 68 x 2 float32), so the copies the
    trainer makes of a set (repeats, pose balance) and the DataLoader workers hold no more."""

    def __init__(
        self,
        cache_dir: str | os.PathLike,
        indices: Sequence[int] | np.ndarray | None = None,
        augment: Mapping[str, Any] | None = None,
        seed: int = 0,
        extra: Mapping[str, float | np.ndarray] | None = None,
    ):
        """``extra``: values added to every item, the same for each (e.g. the set's per-point loss weights)."""
        cache = open_cache(cache_dir)
        super().__init__(cache.size, augment, seed)
        self.cache_dir = Path(cache_dir)
        self.meta = cache.meta
        self.names = cache.names
        self.source_size = cache.source_size
        n = len(cache)
        rows = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
        if rows.size and (rows.min() < 0 or rows.max() >= n):
            raise FacelmError(f"indices out of range for a cache of {n} images", self.cache_dir)
        self.rows = rows
        self._landmarks_px = None if cache.landmarks is None else cache.landmarks[rows]  # this dataset's rows, in order
        self._images = cache.images  # ImageRows: reads rows on demand, reopened by each worker
        self.extra = {k: torch.as_tensor(np.asarray(v, np.float32)) for k, v in (extra or {}).items()}

    @property
    def labelled(self) -> bool:
        return self._landmarks_px is not None

    def landmarks_norm(self) -> np.ndarray | None:
        """Normalised landmarks (n, 68, 2) of this dataset's rows (e.g. for ``fit_priors``), or None."""
        return None if self._landmarks_px is None else self._landmarks_px / self.size

    def __len__(self) -> int:
        return len(self.rows)

    def take(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """Raw samples at ``positions`` (into this dataset's rows), un-augmented, in one read per run of
        consecutive rows: (uint8 (k,S,S,3) images, float32 (k,68,2) pixel landmarks or None, cache rows)."""
        positions = np.asarray(positions, dtype=np.int64)
        rows = self.rows[positions]
        landmarks = None if self._landmarks_px is None else self._landmarks_px[positions]
        return self._images[rows], landmarks, rows

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = int(self.rows[i])
        landmarks = None if self._landmarks_px is None else self._landmarks_px[i]
        return self._item(self._images[row], landmarks, row) | self.extra


def set_epoch(dataset: Dataset, epoch: int) -> None:
    """Set the epoch on a dataset and every part of a ConcatDataset / Subset around it."""
    if isinstance(dataset, ConcatDataset):
        for part in dataset.datasets:
            set_epoch(part, epoch)
    elif isinstance(dataset, Subset):
        set_epoch(dataset.dataset, epoch)
    elif hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)


class EpochKeyed(Dataset):
    """Wraps a dataset so that a sample key carries its epoch: ``key = epoch * n + i``.

    DataLoader workers are *persistent* and started with ``spawn`` (forking a process that has
    already run OpenMP/torch threads can deadlock the child); the epoch reaches each worker's
    copy of the dataset through the keys the sampler sends, not through shared state.
    """

    def __init__(self, dataset: Dataset):
        self.dataset = dataset
        self.n = len(dataset)
        self.epoch = -1

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key: int) -> dict[str, Any]:
        epoch, i = divmod(int(key), self.n)
        if epoch != self.epoch:
            set_epoch(self.dataset, epoch)
            self.epoch = epoch
        return self.dataset[i]


class EpochSampler(Sampler[int]):
    """Keys ``epoch * n + i`` in an order that depends only on ``(seed, epoch)`` (or in order)."""

    def __init__(self, n: int, shuffle: bool, seed: int = 0):
        self.n = int(n)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch))
            order = torch.randperm(self.n, generator=generator)
        else:
            order = torch.arange(self.n)
        return iter((order + self.epoch * self.n).tolist())

    def __len__(self) -> int:
        return self.n


class RankShare(Sampler[int]):
    """One DDP process's share of every global batch of ``sampler`` (``drop_last``).

    Global batch k is positions ``k*B .. (k+1)*B`` of the epoch's order; process ``rank`` of
    ``world`` takes slice ``rank`` of ``world`` equal slices of it. Together the processes see, step
    by step, exactly the batches (and, the draws being keyed by sample, the augmentations) that one
    process with batch ``B`` would.
    """

    def __init__(self, sampler: EpochSampler, global_batch: int, rank: int, world: int):
        if global_batch % world:
            raise FacelmError(f"train.batch_size {global_batch} does not split evenly over {world} processes")
        self.sampler, self.global_batch, self.rank, self.world = sampler, global_batch, rank, world
        self.share = global_batch // world

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        keys = list(self.sampler)
        for start in range(0, len(keys) - self.global_batch + 1, self.global_batch):
            yield from keys[start + self.rank * self.share : start + (self.rank + 1) * self.share]

    def __len__(self) -> int:
        return len(self.sampler) // self.global_batch * self.share


def worker_init(_: int) -> None:
    """Keep each DataLoader worker on one thread (the machine has few cores; workers are the parallelism)."""
    import cv2

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    workers: int,
    seed: int = 0,
    drop_last: bool = False,
    rank: int = 0,
    world: int = 1,
) -> DataLoader:
    """A DataLoader whose order and draws depend only on ``(seed, epoch)``; see :func:`set_loader_epoch`.

    With ``world > 1`` (DDP) ``batch_size`` is the global batch and this process loads its share
    (:class:`RankShare`; incomplete batches are dropped)."""
    sampler = EpochSampler(len(dataset), shuffle, seed)
    if world > 1:
        sampler = RankShare(sampler, batch_size, rank, world)
    return DataLoader(
        EpochKeyed(dataset),
        batch_size=batch_size // world,
        sampler=sampler,
        num_workers=workers,
        drop_last=drop_last,
        persistent_workers=workers > 0,
        multiprocessing_context="spawn" if workers > 0 else None,
        worker_init_fn=worker_init if workers > 0 else None,
        pin_memory=torch.cuda.is_available(),
    )


def set_loader_epoch(loader: DataLoader, epoch: int) -> None:
    """Select ``epoch`` for the next pass over ``loader`` (its keys carry the epoch to the workers)."""
    loader.sampler.set_epoch(epoch)
