"""Whole batches from the caches: the same samples, in the same order, as the per-sample loader."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import ConcatDataset

from facelm.data.batch_augment import build_batch_augment
from facelm.data.batch_loader import CacheBatches, make_batch_loader
from facelm.data.cache import build_cache
from facelm.data.dataset import LandmarkDataset, derive_seed, make_loader, set_loader_epoch
from facelm.errors import FacelmError


@pytest.fixture(scope="module")
def cache(tmp_path_factory, make_labelled_folder):
    root = tmp_path_factory.mktemp("batches")
    folder = root / "faces"
    make_labelled_folder(folder, 11)
    return build_cache(folder, root / "cache", 1.0, "fixed", 32, workers=0, progress=False)


@pytest.mark.parametrize("drop_last", [False, True])
def test_batches_match_the_per_sample_loader(cache, drop_last):
    def parts():  # two row subsets of one cache, as the trainer builds them for a fold
        return [LandmarkDataset(cache, indices=[7, 1, 9, 4]), LandmarkDataset(cache, indices=[0, 10, 3, 2, 8])]

    reference = make_loader(ConcatDataset(parts()), 4, True, 0, seed=3, drop_last=drop_last)
    batches = CacheBatches(parts(), 4, True, seed=3, drop_last=drop_last)
    assert len(batches) == len(reference) == (2 if drop_last else 3)
    for epoch in (0, 1):
        set_loader_epoch(reference, epoch)
        set_loader_epoch(batches, epoch)
        got, want = list(batches), list(reference)
        assert len(got) == len(want)
        for a, b in zip(got, want):
            assert a["image"].dtype == torch.uint8 and a["image"].shape == b["image"].shape
            assert torch.equal(a["image"].float(), b["image"])
            assert torch.equal(a["landmarks"], b["landmarks"]) and torch.equal(a["index"], b["index"])


def test_mixed_sizes_are_refused(cache, tmp_path):
    other = build_cache(cache.parent / "faces", tmp_path / "c", 1.0, "fixed", 40, workers=0, progress=False)
    with pytest.raises(FacelmError, match="one image size"):
        CacheBatches([LandmarkDataset(cache), LandmarkDataset(other)], 4, False)


def test_worker_batches_get_the_trainers_draws(cache):
    """make_batch_loader augments batch b of epoch e with the generator the trainer would use on the device."""
    augment = build_batch_augment({}, 32)
    batches = CacheBatches([LandmarkDataset(cache)], 4, True, seed=2, drop_last=True)
    loader = make_batch_loader(batches, augment, workers=0, seed=2)
    set_loader_epoch(loader, 1)
    got = list(loader)
    set_loader_epoch(batches, 1)
    for step, (raw, ours) in enumerate(zip(batches, got), start=len(batches)):
        draws = torch.Generator().manual_seed(derive_seed(2, 1, step))
        images, points = augment(raw["image"], raw["landmarks"], draws)
        assert torch.equal(images, ours["image"]) and torch.equal(points, ours["landmarks"])
    assert len(got) == 2 and got[0]["image"].dtype == torch.float32


def test_per_set_values_travel_with_their_samples(cache):
    """A set's per-sample values (its (68,) point weights) reach the trainer on every batch row."""
    half, ones = np.full(68, 0.5, np.float32), np.ones(68, np.float32)
    parts = [LandmarkDataset(cache, indices=[0, 1, 2], extra={"point_weights": half}),
             LandmarkDataset(cache, indices=[3, 4, 5, 6], extra={"point_weights": ones})]
    for batch in CacheBatches(parts, 3, True, seed=1):
        k = len(batch["index"])
        assert batch["point_weights"].dtype == torch.float32 and batch["point_weights"].shape == (k, 68)
        expected = torch.where((batch["index"] >= 3)[:, None], torch.ones(k, 68), torch.full((k, 68), 0.5))
        assert torch.equal(batch["point_weights"], expected)
    with pytest.raises(FacelmError, match="same per-sample values"):
        CacheBatches([parts[0], LandmarkDataset(cache)], 3, True)
    with pytest.raises(FacelmError, match="same shapes"):
        CacheBatches([parts[0], LandmarkDataset(cache, extra={"point_weights": np.ones(17, np.float32)})], 3, True)


def test_ddp_processes_share_out_each_global_batch(cache):
    whole = CacheBatches([LandmarkDataset(cache)], 4, True, seed=5, drop_last=True)
    shares = [CacheBatches([LandmarkDataset(cache)], 4, True, seed=5, drop_last=True, rank=r, world=2) for r in (0, 1)]
    for batch, first, second in zip(whole, *shares):
        assert torch.equal(batch["index"], torch.cat([first["index"], second["index"]]))
    with pytest.raises(FacelmError, match="does not split evenly"):
        CacheBatches([LandmarkDataset(cache)], 5, True, drop_last=True, rank=0, world=2)
