"""Every training option reaches the batches the model really trains on, under every loader path.

A recorder wraps the model's loss and keeps what each training step hands it; per epoch the test
counts the samples of each set and of each row (``repeat``, ``train.pose_balance``) and reads their
point weights (the conventions under ``train.jaw_convention``, ``point_weights``). A path that drops
an option trains on other counts or other weights and fails here.
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch

from facelm.config import ModelSpec, parse_config
from facelm.data import training_set
from facelm.landmarks68 import GROUPS
from facelm.models import create_model
from facelm.training import trainer

JAW, INNER_LIP = GROUPS["jaw"], GROUPS["inner_lip"]
#: label |yaw| the test gives synthetics_train's 48 rows (the demo faces are all frontal): 12 in the
#: 30-60 bin and 4 in the 60-90 one; with aflw_val's 12 frontal rows the bins hold 44, 12 and 4 faces
TURNED = {**{row: 45.0 for row in range(12)}, **{row: 75.0 for row in range(12, 16)}}


def _record_batches(monkeypatch) -> list[dict]:
    """Every training batch's point weights and cache rows, as the model's loss receives them."""
    seen: list[dict] = []

    def recording(name, **kwargs):
        model = create_model(name, **kwargs)
        loss = model.loss

        def recorded(out, batch, point_loss):
            if model.training:
                seen.append({"weights": batch["point_weights"].detach().cpu(), "index": batch["index"].cpu()})
            return loss(out, batch, point_loss)

        model.loss = recorded
        return model

    monkeypatch.setattr(trainer, "create_model", recording)
    return seen


def _fake_yaw(landmarks_norm):
    yaw = np.zeros(len(landmarks_norm))
    yaw[list(TURNED)] = list(TURNED.values())  # rows 0..47 are synthetics_train's, in order
    return yaw


@pytest.mark.parametrize("backend,workers", [("batch", 0), ("batch", 1), ("albumentations", 0)])
def test_every_option_reaches_the_training_batches(demo_data, tmp_path, monkeypatch, backend, workers):
    seen = _record_batches(monkeypatch)
    monkeypatch.setattr(training_set, "label_yaw_deg", _fake_yaw)
    config = parse_config({
        "data_dir": str(demo_data), "train_sets": ["synthetics_train", "aflw_val"],
        "train_set_options": {"synthetics_train": {"convention": "3d_jaw", "point_weights": {"inner_lip": 0.5}},
                              "aflw_val": {"convention": "2d_visible_jaw", "repeat": 3}},
        "results_dir": str(tmp_path / "results"), "models": [{"name": "pfld_025"}], "augment": {"backend": backend},
        "train": {"size": 32, "epochs": 1, "batch_size": 4, "workers": workers, "jaw_convention": "3d_jaw",
                  "pose_balance": 1.0},
    })
    metrics = trainer.train_model(config, ModelSpec("pfld_025"), None, tmp_path / "run")

    weights = torch.cat([b["weights"] for b in seen])
    index = torch.cat([b["index"] for b in seen])
    other_jaw = weights[:, JAW].eq(0).all(1)  # aflw_val's samples: another convention's jaw weighs 0
    # synthetics_train: 32 frontal rows once, 12 rows round(44/12) = 4 times, 4 rows round(44/4) = 11 -> 8 times
    expected = {"synthetics_train": 32 + 12 * 4 + 4 * 8, "aflw_val": 12 * 3}
    assert len(weights) == sum(expected.values()) == 148
    assert int(other_jaw.sum()) == expected["aflw_val"]
    assert Counter(index[other_jaw].tolist()) == {row: 3 for row in range(12)}
    own = Counter(index[~other_jaw].tolist())
    assert own == {row: 4 if row < 12 else 8 if row < 16 else 1 for row in range(48)}
    assert weights[~other_jaw][:, INNER_LIP].eq(0.5).all() and weights[~other_jaw][:, :60].eq(1).all()
    assert weights[other_jaw][:, 17:].eq(1).all()
    summary = {"train_samples_per_epoch": 148, "train_samples_per_set": expected}
    assert {k: metrics[k] for k in summary} == summary
    assert {k: v for k, v in json.loads((tmp_path / "run" / "metrics.json").read_text()).items() if k in summary} == summary
