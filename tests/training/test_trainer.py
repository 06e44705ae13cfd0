"""The trainer: outputs, budget refusal, resume equality, folds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from facelm.config import ModelSpec, parse_config
from facelm.errors import FacelmError
from facelm.training.trainer import train_model


def _config(demo_data, tmp_path, **train):
    return parse_config({
        "data_dir": str(demo_data), "train_sets": ["synthetics_train"], "results_dir": str(tmp_path / "results"),
        "models": [{"name": "pfld_025"}], "folds": {"k": 3, "train_folds": [0]},
        "train": {"size": 64, "epochs": 2, "batch_size": 8, "workers": 0, **train},
    })


def _weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


def test_fold_run_writes_every_output(demo_data, tmp_path):
    config = _config(demo_data, tmp_path, epochs=1)
    metrics = train_model(config, ModelSpec("mobilenetv3_small_050", {"head": "heatmap"}), 0, tmp_path / "run")
    out = tmp_path / "run"
    for name in ("model.pt", "metrics.json", "history.csv", "config.json", "oof_pred.npy", "oof_rows.npy", "val_pred.npy"):
        assert (out / name).exists(), name
    oof = np.load(out / "oof_pred.npy")
    assert oof.shape == (16, 68, 2) and np.load(out / "oof_rows.npy").shape == (16,)
    assert np.load(out / "val_pred.npy").shape == (12, 68, 2)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(metrics))
    assert {"val_nme_384", "oof_nme_384", "size_mb", "params", "train_img_s"} <= set(saved)
    assert 0 < saved["val_nme_384"] < 100 and oof.max() > 64  # 384 frame, not the 64-px input frame


def test_over_budget_model_is_refused_before_training(demo_data, tmp_path):
    config = _config(demo_data, tmp_path)
    config = config.updated(budget_mb=0.1)
    with pytest.raises(FacelmError, match=r"pfld_025 is 0\.\d\d MB, over the budget of 0\.1 MB"):
        train_model(config, ModelSpec("pfld_025"), 0, tmp_path / "run")
    assert not (tmp_path / "run").exists()


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("workers,backend", [(0, "albumentations"), (2, "albumentations"), (0, "batch"), (2, "batch")])
def test_resume_after_interruption_gives_the_same_weights(demo_data, tmp_path, workers, backend):
    config = _config(demo_data, tmp_path, workers=workers).updated(augment={"backend": backend})
    entry = ModelSpec("pfld_025")
    train_model(config, entry, 0, tmp_path / "straight")

    def stop_after_first_epoch(epoch, _):
        if epoch == 0:
            raise Interrupt

    with pytest.raises(Interrupt):
        train_model(config, entry, 0, tmp_path / "resumed", on_epoch=stop_after_first_epoch)
    assert (tmp_path / "resumed" / "last.ckpt").exists() and not (tmp_path / "resumed" / "model.pt").exists()
    train_model(config, entry, 0, tmp_path / "resumed")
    a, b = _weights(tmp_path / "straight" / "model.pt"), _weights(tmp_path / "resumed" / "model.pt")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_changed_settings_do_not_resume_a_foreign_checkpoint(demo_data, tmp_path, capsys):
    config = _config(demo_data, tmp_path, epochs=1)
    train_model(config, ModelSpec("pfld_025"), 0, tmp_path / "run")
    config = config.updated(train={"lr": 0.01})
    train_model(config, ModelSpec("pfld_025"), 0, tmp_path / "run")
    assert "other settings" in capsys.readouterr().err


def test_a_hostile_resume_checkpoint_runs_no_code(demo_data, tmp_path):
    class RunsCode:
        def __reduce__(self):
            return os.system, (f"touch {tmp_path / 'PWNED'}",)

    (tmp_path / "run").mkdir()
    torch.save({"fingerprint": "x", "history": RunsCode()}, tmp_path / "run" / "last.ckpt")
    with pytest.raises(FacelmError, match="cannot resume from this checkpoint"):
        train_model(_config(demo_data, tmp_path, epochs=1), ModelSpec("pfld_025"), 0, tmp_path / "run")
    assert not (tmp_path / "PWNED").exists()


def test_val_every_validates_every_kth_and_the_last_epoch_and_times_each_phase(demo_data, tmp_path):
    config = _config(demo_data, tmp_path, epochs=3, val_every=2, size=32)
    seen = []
    metrics = train_model(config, ModelSpec("pfld_025"), None, tmp_path / "run", on_epoch=lambda e, v: seen.append(e))
    assert seen == [1, 2]
    history = (tmp_path / "run" / "history.csv").read_text().splitlines()[1:]
    assert [row.split(",")[3] == "nan" for row in history] == [True, False, False]
    phases = metrics["phase_seconds"]
    assert {"startup", "data wait", "compute", "EMA + logging", "validation", "checkpoint", "final outputs"} <= set(phases)
    assert all(v >= 0 for v in phases.values()) and phases["compute"] > 0


@pytest.mark.slow
def test_kill_9_mid_epoch_then_rerun_continues(demo_data, tmp_path):
    args = [sys.executable, "-m", "facelm", "train", "--data", str(demo_data / "synthetics_train"), "--val",
            str(demo_data / "aflw_val"), "--backbone", "pfld_025", "--epochs", "6", "--size", "64", "--batch-size", "4",
            "--workers", "0", "--results-dir", str(tmp_path / "results"), "--out", str(tmp_path / "run")]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ckpt = tmp_path / "run" / "last.ckpt"
    deadline = time.time() + 240
    while not ckpt.exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)  # now inside the next epoch
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert ckpt.exists() and not (tmp_path / "run" / "model.pt").exists()
    result = subprocess.run(args, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resuming" in result.stderr
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs"] == 6


def test_the_teacher_term_is_unweighted_and_mixed_by_the_distill_weight():
    """The teacher labels every point in the target convention: its term ignores the samples' point weights."""
    from facelm.models import create_model
    from facelm.models.losses import create_loss
    from facelm.training.trainer import StepLoss

    torch.manual_seed(0)
    model = create_model("pfld_025")
    images = torch.rand(2, 3, 64, 64) * 255
    out = model(images)
    labels, taught = torch.rand(2, 68, 2) * 0.2 + 0.4, torch.rand(2, 68, 2) * 0.2 + 0.4
    no_jaw = torch.ones(2, 68)
    no_jaw[:, :17] = 0.0
    batch = {"image": images, "landmarks": labels, "point_weights": no_jaw}
    loss, wing = model.loss, create_loss("wing")
    mixed = StepLoss(model, wing, teacher=lambda _: taught, taught=0.25)(out, batch)
    expected = 0.75 * loss(out, batch, wing)[0] + 0.25 * loss(out, {"image": images, "landmarks": taught}, wing)[0]
    assert torch.allclose(mixed, expected)
    assert torch.allclose(StepLoss(model, wing)(out, batch), loss(out, batch, wing)[0])
