"""The training loader of a run, on one of three paths over the same training view.

Every path reads :meth:`facelm.data.training_set.TrainingSet.train_view` (repeats, pose copies,
per-point weights), so an epoch holds the same samples whichever runs:

* ``augment.backend: albumentations``: each sample augmented in the DataLoader workers
  (:func:`facelm.data.dataset.make_loader`);
* ``batch`` on a GPU: raw uint8 batches gathered from the cache in the training process
  (:class:`facelm.data.batch_loader.CacheBatches`), augmented on the device by tensor operations
  (the loop applies :attr:`TrainLoader.on_device`);
* ``batch`` on a CPU: the same draws applied by OpenCV in DataLoader workers
  (:func:`facelm.data.batch_loader.make_batch_loader`); with no workers, in the training process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch

from facelm.config import Augment, Train
from facelm.data.batch_augment import build_batch_augment
from facelm.data.batch_draws import BatchAugmentBase
from facelm.data.batch_loader import CacheBatches, make_batch_loader
from facelm.data.dataset import make_loader, set_loader_epoch
from facelm.data.training_set import TrainingSet


@dataclass(frozen=True)
class TrainLoader:
    """Batches of an epoch (:func:`facelm.data.dataset.set_loader_epoch` selects it), the batch
    augmentation the loop still applies to each (None: the batches come augmented), the global batch."""

    batches: Iterable[dict]
    on_device: BatchAugmentBase | None
    batch_size: int

    def __len__(self) -> int:
        return len(self.batches)

    def set_epoch(self, epoch: int) -> None:
        set_loader_epoch(self.batches, epoch)


def build_train_loader(training: TrainingSet, augment: Augment, cfg: Train, device: torch.device, seed: int,
                       rank: int = 0, world: int = 1) -> TrainLoader:
    """The loader of ``training``'s training view for ``augment.backend`` on ``device`` (under DDP each
    process loads its share of every global batch)."""
    if augment.backend == "albumentations":
        view = training.train_view(per_sample_augment=True)
        batch_size = min(cfg.batch_size, len(view))
        loader = make_loader(view, batch_size, True, cfg.workers, seed, drop_last=True, rank=rank, world=world)
        return TrainLoader(loader, None, batch_size)
    view = training.train_view(per_sample_augment=False)
    batch_size = min(cfg.batch_size, len(view))
    batches = CacheBatches(view.datasets, batch_size, True, seed, drop_last=True, rank=rank, world=world)
    executor = "torch" if device.type == "cuda" else "opencv"
    batch_augment = build_batch_augment(augment, cfg.size, executor)
    if executor == "opencv" and cfg.workers > 0:
        return TrainLoader(make_batch_loader(batches, batch_augment, cfg.workers, seed), None, batch_size)
    return TrainLoader(batches, batch_augment, batch_size)
