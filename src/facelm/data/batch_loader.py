"""Whole batches read straight from the caches, for augmentation on the training device.

With ``augment.backend: batch`` the per-sample work in DataLoader workers (augmentation,
float conversion, collation, inter-process copies of float32 tensors) is gone: what is left
of loading is gathering rows of the uint8 cache, which one fancy-indexed read per cache does
at memory speed. :class:`CacheBatches` does that in the training process and yields
``{"image": uint8 (B,3,S,S) (a channels-last view), "landmarks": float32 (B,68,2) normalised,
"index": int64 cache rows}`` plus the datasets' per-sample values (``extra``, e.g. the
``point_weights`` of a train set, (B, 68)) as float32; the trainer converts and augments on the device.

Order: the same :class:`facelm.data.dataset.EpochSampler` as :func:`make_loader`, so the
order of samples depends only on ``(seed, epoch)`` and :func:`set_loader_epoch` works on it.

Without a GPU, "the device" is the CPU the model trains on; :func:`make_batch_loader` then runs
the same draws, executed by OpenCV (:mod:`facelm.data.opencv_augment`), in DataLoader worker
processes instead.

Under DDP (``world`` > 1) ``batch_size`` is the global batch: process ``rank`` gathers slice
``rank`` of every global batch, like :class:`facelm.data.dataset.RankShare`, and augments it with
its share of the global batch's draws, so the processes together see what one process would.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from facelm.data.batch_draws import BatchAugmentBase
from facelm.data.dataset import EpochSampler, LandmarkDataset, derive_seed, worker_init
from facelm.errors import FacelmError


class CacheBatches:
    """Batches over the concatenation of ``datasets`` (each a cache with a row subset)."""

    def __init__(self, datasets: Sequence[LandmarkDataset], batch_size: int, shuffle: bool, seed: int = 0,
                 drop_last: bool = False, rank: int = 0, world: int = 1):
        self.datasets = list(datasets)
        if not self.datasets or any(d.size != self.datasets[0].size for d in self.datasets):
            raise FacelmError("batches need at least one cache, all of one image size")
        self.extra_shapes = {key: tuple(v.shape) for key, v in sorted(self.datasets[0].extra.items())}
        if any({key: tuple(v.shape) for key, v in sorted(d.extra.items())} != self.extra_shapes for d in self.datasets):
            raise FacelmError("batches need the same per-sample values (extra), of the same shapes, on every dataset")
        if world > 1 and (batch_size % world or not drop_last):
            raise FacelmError(f"a global batch of {batch_size} does not split evenly over {world} processes "
                              "(and DDP needs drop_last)")
        self.rank, self.world = int(rank), int(world)
        self.offsets = np.cumsum([0] + [len(d) for d in self.datasets])
        self.n = int(self.offsets[-1])
        self.batch_size = int(batch_size)
        self.drop_last = drop_last
        self.sampler = EpochSampler(self.n, shuffle, seed)
        self.size = self.datasets[0].size

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def gather(self, positions: np.ndarray) -> dict[str, Any]:
        """One batch: the samples at ``positions`` in the concatenated datasets, in that order."""
        k, s = len(positions), self.size
        images = np.empty((k, s, s, 3), np.uint8)
        landmarks = np.empty((k, 68, 2), np.float32)
        rows = np.empty(k, np.int64)
        extra = {key: np.empty((k, *shape), np.float32) for key, shape in self.extra_shapes.items()}
        part = np.searchsorted(self.offsets, positions, side="right") - 1
        for p in np.unique(part):
            where = np.flatnonzero(part == p)
            local = positions[where] - self.offsets[p]
            order = np.argsort(local)  # ascending rows read the file front to back
            part_images, part_landmarks, part_rows = self.datasets[p].take(local[order])
            images[where[order]] = part_images
            rows[where[order]] = part_rows
            if part_landmarks is None:
                raise FacelmError("training cache has no landmarks", self.datasets[p].cache_dir)
            landmarks[where[order]] = part_landmarks / s
            for key in extra:
                extra[key][where] = self.datasets[p].extra[key].numpy()
        return {"image": torch.from_numpy(images).permute(0, 3, 1, 2), "landmarks": torch.from_numpy(landmarks),
                "index": torch.from_numpy(rows), **{key: torch.from_numpy(v) for key, v in extra.items()}}

    def positions(self, order: np.ndarray, b: int) -> np.ndarray:
        """This process's positions of batch ``b`` of an epoch's ``order`` (its share under DDP)."""
        share = self.batch_size // self.world
        start = b * self.batch_size + self.rank * share
        return order[start : min(start + share, (b + 1) * self.batch_size)]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        order = np.fromiter(iter(self.sampler), np.int64, self.n) - self.sampler.epoch * self.n
        for b in range(len(self)):
            yield self.gather(self.positions(order, b))


class BatchKeys(Sampler[int]):
    """Keys ``epoch * n_batches + b`` of one epoch's batches (the epoch travels to the workers in them)."""

    def __init__(self, n_batches: int):
        self.n_batches, self.epoch = n_batches, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.epoch * self.n_batches, (self.epoch + 1) * self.n_batches))

    def __len__(self) -> int:
        return self.n_batches


class AugmentedBatches(Dataset):
    """Batch ``b`` of an epoch (key ``epoch * n_batches + b``), gathered and batch-augmented in a worker.

    The draws come from ``derive_seed(seed, epoch, step)`` with ``step = epoch * n_batches + b``, the
    generator the trainer uses when it augments on the device, so both places give the same draws.
    """

    def __init__(self, batches: CacheBatches, augment: BatchAugmentBase | None, seed: int):
        self.batches, self.augment, self.seed = batches, augment, int(seed)
        self._epoch, self._order = -1, np.zeros(0, np.int64)

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, key: int) -> dict[str, Any]:
        epoch, b = divmod(int(key), len(self.batches))
        if epoch != self._epoch:
            self.batches.sampler.set_epoch(epoch)
            self._order = np.fromiter(iter(self.batches.sampler), np.int64, self.batches.n) - epoch * self.batches.n
            self._epoch = epoch
        batch = self.batches.gather(self.batches.positions(self._order, b))
        if self.augment is not None:
            draws = torch.Generator().manual_seed(derive_seed(self.seed, epoch, int(key)))
            batch["image"], batch["landmarks"] = self.augment(batch["image"], batch["landmarks"], draws,
                                                              self.batches.rank, self.batches.world)
        return batch


def make_batch_loader(batches: CacheBatches, augment: BatchAugmentBase | None, workers: int, seed: int = 0) -> DataLoader:
    """Whole (augmented) batches made by ``workers`` persistent spawned processes, one thread each (the
    CPU-only form of ``augment.backend: batch``, with the OpenCV executor); :func:`set_loader_epoch`
    selects the epoch."""
    return DataLoader(AugmentedBatches(batches, augment, seed), batch_size=None, sampler=BatchKeys(len(batches)),
                      num_workers=workers, persistent_workers=workers > 0,
                      multiprocessing_context="spawn" if workers > 0 else None,
                      worker_init_fn=worker_init if workers > 0 else None)
