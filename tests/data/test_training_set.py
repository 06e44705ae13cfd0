"""The training set of a run: its training view (repeats, pose copies, point weights) and evaluation views."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from facelm.config import parse_config, schema
from facelm.data.pose import pose_from_landmarks
from facelm.data.training_set import POINT_WEIGHTS, WEIGHT_REGIONS, TrainingSet, set_point_weights
from facelm.landmarks68 import FLIP_PERM, GROUPS


def _two_sets(demo_data, tmp_path, options, **train):
    return parse_config({
        "data_dir": str(demo_data), "train_sets": ["synthetics_train", "aflw_val"], "train_set_options": options,
        "results_dir": str(tmp_path / "results"), "models": [{"name": "pfld_025"}],
        "train": {"size": 64, "workers": 0, **train},
    })


def test_repeat_adds_differently_augmented_copies_and_the_summary_counts_them(demo_data, tmp_path):
    config = _two_sets(demo_data, tmp_path, {"aflw_val": {"repeat": 3}})
    training = TrainingSet(config, None, config.train)
    train = training.train_view(per_sample_augment=True)
    assert len(train) == 48 + 3 * 12
    first, second = train[48], train[60]  # row 0 of aflw_val in copies 0 and 1
    assert first["index"] == second["index"] == 0
    assert not torch.equal(first["image"], second["image"])
    assert len(training.train_view(per_sample_augment=False)) == 48 + 3 * 12  # the batch backend's view: same rows
    assert torch.equal(training.train_view(False)[48]["image"], training.train_view(False)[60]["image"])  # raw
    assert len(training.eval_view(training.train_rows)) == 48 + 12  # evaluation sees each face once
    assert training.epoch_summary() == {"train_samples_per_epoch": 84,
                                        "train_samples_per_set": {"synthetics_train": 48, "aflw_val": 36}}


def test_pose_balance_oversamples_turned_faces(aflw_val, tmp_path):
    """On the real AFLW crops (many turned faces): rarer yaw bins get round(n_largest / n_bin) copies."""
    config = parse_config({"data_dir": str(aflw_val.parent), "train_sets": ["aflw_val"], "splits": {"val": "aflw_val"},
                           "results_dir": str(tmp_path / "results"), "models": [{"name": "pfld_025"}],
                           "train": {"size": 64}})
    plain = TrainingSet(config, None, config.train)
    yaw = np.abs(np.degrees(pose_from_landmarks(plain.landmarks_norm(plain.train_rows) * 384, 384)[:, 0]))
    bins = [yaw < 30, (yaw >= 30) & (yaw < 60), yaw >= 60]
    sizes = [int(b.sum()) for b in bins]
    assert sizes[0] > sizes[1] > 0 and sizes[2] > 0
    assert (plain.copies == 1).all()

    balanced = TrainingSet(config, None, dataclasses.replace(config.train, pose_balance=1.0))
    for in_bin, n in zip(bins, sizes):
        assert (balanced.copies[in_bin] == min(8, round(max(sizes) / n))).all()
    assert balanced.copies.max() > 1
    for per_sample_augment in (True, False):
        assert len(balanced.train_view(per_sample_augment)) == balanced.copies.sum()
    assert len(balanced.eval_view(balanced.train_rows)) == len(yaw)


def test_a_set_of_another_jaw_convention_weighs_its_jaw_zero(demo_data, tmp_path):
    options = {"synthetics_train": {"convention": "3d_jaw", "point_weights": {"inner_lip": 0.5}},
               "aflw_val": {"convention": "2d_visible_jaw"}}
    config = _two_sets(demo_data, tmp_path, options, jaw_convention="3d_jaw")
    train = TrainingSet(config, None, config.train).train_view(per_sample_augment=False)
    own, other = train[0][POINT_WEIGHTS], train[48][POINT_WEIGHTS]
    assert own.shape == (68,) and own.dtype == torch.float32
    assert own[GROUPS["inner_lip"]].eq(0.5).all() and own[:60].eq(1).all()
    assert other[GROUPS["jaw"]].eq(0).all() and other[17:].eq(1).all()
    anything = TrainingSet(config, None, dataclasses.replace(config.train, jaw_convention="any")).train_view(False)
    assert anything[48][POINT_WEIGHTS].eq(1).all()  # jaw_convention any: every set's jaw teaches


@pytest.mark.parametrize("region", sorted(WEIGHT_REGIONS))
def test_every_weight_region_is_mirror_symmetric(region):
    """A mirrored sample re-orders its points with FLIP_PERM; its weights need no re-ordering."""
    weights = set_point_weights({"point_weights": {region: 0.25}}, "any")
    assert np.array_equal(weights, weights[FLIP_PERM]) and (weights == 0.25).sum() == len(WEIGHT_REGIONS[region])


def test_the_schema_offers_exactly_the_weight_regions():
    options = schema()["properties"]["train_set_options"]["additionalProperties"]["properties"]
    assert set(options["point_weights"]["properties"]) == set(WEIGHT_REGIONS)
    assert sorted(i for idx in WEIGHT_REGIONS.values() for i in idx) == list(range(68))
