"""Datasets over the cache and over raw folders; seeded, worker-independent loading."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import ConcatDataset

from facelm.data.cache import build_cache
from facelm.data.dataset import (EpochSampler, LandmarkDataset, RankShare, make_loader,
                                 set_loader_epoch)
from facelm.errors import FacelmError

AUG = {"hflip_p": 0.5, "rotate_deg": 20, "occlusion_p": 0.5}


@pytest.fixture(scope="module")
def labelled(tmp_path_factory, make_labelled_folder):
    """A 12-image labelled folder (made-up pixels, real-looking 384-frame points) and its 64-px cache."""
    root = tmp_path_factory.mktemp("ds")
    folder = root / "faces"
    points = make_labelled_folder(folder, 12)
    cache = build_cache(folder, root / "cache", 1.0, "fixed", 64, workers=0, progress=False)
    return folder, cache, points


def test_items_follow_the_contract(labelled):
    _, cache, points = labelled
    ds = LandmarkDataset(cache, indices=[3, 7])
    assert len(ds) == 2 and ds.size == 64 and ds.source_size == 384
    item = ds[1]
    assert item["index"] == 7
    assert item["image"].dtype == torch.float32 and item["image"].shape == (3, 64, 64)
    assert 0 <= item["image"].min() and item["image"].max() <= 255
    assert item["landmarks"].dtype == torch.float32 and item["landmarks"].shape == (68, 2)
    np.testing.assert_allclose(item["landmarks"].numpy(), points[7] / 384, rtol=1e-5)
    np.testing.assert_allclose(ds.landmarks_norm(), points[[3, 7]] / 384, rtol=1e-5)
    with pytest.raises(FacelmError, match="out of range"):
        LandmarkDataset(cache, indices=[12])


def test_augmentation_depends_on_seed_epoch_index_only(labelled):
    _, cache, _ = labelled
    ds = LandmarkDataset(cache, augment=AUG, seed=1)
    first = ds[4]
    assert torch.equal(ds[4]["image"], first["image"])  # same (seed, epoch, index) -> same draw
    ds.set_epoch(1)
    assert not torch.equal(ds[4]["image"], first["image"])


def _epoch_batches(loader, epoch):
    set_loader_epoch(loader, epoch)
    return [(b["index"].tolist(), b["image"].sum().item(), b["landmarks"].sum().item()) for b in loader]


def test_loader_order_and_draws_do_not_depend_on_workers(labelled):
    _, cache, _ = labelled
    runs = {}
    for workers in (0, 2):
        loader = make_loader(LandmarkDataset(cache, augment=AUG, seed=5), 4, True, workers, seed=5, drop_last=True)
        runs[workers] = [_epoch_batches(loader, e) for e in (0, 1)]
    assert runs[0] == runs[2]
    (order0, order1) = ([i for b in run for i in b[0]] for run in runs[0])
    assert sorted(order0) == list(range(12)) and order0 != order1  # a new permutation per epoch
    plain = make_loader(LandmarkDataset(cache), 5, False, 0)
    assert [b["index"].tolist() for b in plain] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11]]


def test_concat_datasets_all_get_the_epoch(labelled):
    _, cache, _ = labelled
    parts = [LandmarkDataset(cache, indices=range(6), augment=AUG), LandmarkDataset(cache, indices=range(6, 12), augment=AUG)]
    loader = make_loader(ConcatDataset(parts), 4, True, 0, seed=0)
    set_loader_epoch(loader, 3)
    next(iter(loader))  # the epoch reaches the datasets with the first keys
    assert [p.epoch for p in parts] == [3, 3] and loader.sampler.epoch == 3


def test_unlabelled_cache_has_no_landmarks_key(tmp_path):
    folder = tmp_path / "test"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"t{i}.jpg"), np.full((48, 48, 3), 40 * i, np.uint8))
    cache = build_cache(folder, tmp_path / "c", 1.0, "fixed", 24, workers=0, progress=False)
    ds = LandmarkDataset(cache, augment=AUG)
    assert ds.landmarks_norm() is None
    item = ds[2]
    assert set(item) == {"image", "index"} and item["image"].shape == (3, 24, 24)


def test_rank_shares_make_up_the_single_process_batches():
    """DDP: step by step, the processes' shares of a batch are exactly one process's batch."""
    single = EpochSampler(50, shuffle=True, seed=3)
    shares = [RankShare(EpochSampler(50, shuffle=True, seed=3), 8, rank, 2) for rank in range(2)]
    for epoch in (0, 4):
        single.set_epoch(epoch)
        for share in shares:
            share.set_epoch(epoch)
        keys = list(single)
        per_rank = [list(share) for share in shares]
        assert [len(p) for p in per_rank] == [len(s) for s in shares] == [24, 24]  # 6 full batches of 8, halved
        for step in range(6):
            together = per_rank[0][step * 4 : step * 4 + 4] + per_rank[1][step * 4 : step * 4 + 4]
            assert together == keys[step * 8 : step * 8 + 8]
    with pytest.raises(FacelmError, match="does not split evenly over 3 processes"):
        RankShare(single, 8, 0, 3)
