"""Distillation: the teacher's labels (flip TTA, ensembles), the student is pulled towards the
teacher, an over-budget teacher still yields a submittable student, the DAG's challenge mode."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from facelm.cli import main as cli_main
from facelm.config import ModelSpec, parse_config
from facelm.errors import FacelmError
from facelm.models import create_model, model_size_mb
from facelm.models.checkpoint import save_checkpoint
from facelm.training.distill import Teacher, distill

SIZE = 64


def _config(demo_data, tmp_path, **sections):
    base = {
        "data_dir": str(demo_data), "train_sets": ["synthetics_train"], "results_dir": str(tmp_path / "results"),
        "models": [{"name": "pfld_025"}], "folds": {"k": 2, "train_folds": [0]},
        "train": {"size": SIZE, "epochs": 2, "batch_size": 8, "workers": 0, "warmup_epochs": 0, "lr": 0.005},
        "distill": {"enabled": True, "student": {"name": "mobilenetv3_small_050", "kwargs": {"head": "regression"}}},
    }
    for key, value in sections.items():
        base[key] = {**base[key], **value} if isinstance(base.get(key), dict) else value
    return parse_config(base)


def _constant_teacher(path, shape: np.ndarray, size: int = SIZE, name: str = "mobilenetv3_small_050"):
    """A model.pt that predicts ``shape`` for every image (a regression head starts at its reference)."""
    model = create_model(name, head="regression")
    model.fit_priors(shape[None])
    save_checkpoint(path, model, {"input_size": size, "gamma": 1.0, "gamma_mode": "fixed",
                                  "size_mb": model_size_mb(model)})
    return path


def _odd_shape() -> np.ndarray:
    """A face shape far from the demo labels: the mean shape shrunk and moved up-left."""
    from facelm.models.base import mean_shape_normalised

    shape = mean_shape_normalised().numpy()
    return ((shape - 0.5) * 0.6 + 0.35).astype(np.float32)


def test_flip_tta_teacher_is_mirror_consistent(tmp_path):
    """With flip TTA, labelling the mirrored image gives the mirrored labels (exactly)."""
    from facelm.landmarks68 import flip_horizontal

    torch.manual_seed(0)
    model = create_model("mobilenetv3_small_050", head="heatmap").eval()
    save_checkpoint(tmp_path / "t.pt", model, {"input_size": SIZE, "gamma": 1.0, "gamma_mode": "fixed", "size_mb": 1.0})
    teacher = Teacher.from_file(tmp_path / "t.pt", hflip_tta=True, gamma=1.0, gamma_mode="fixed")
    images = torch.rand(3, 3, SIZE, SIZE) * 255
    direct = teacher(images).numpy()
    mirrored = teacher(images.flip(-1)).numpy()
    np.testing.assert_allclose(flip_horizontal(mirrored, 1.0), direct, atol=1e-5)
    plain = Teacher.from_file(tmp_path / "t.pt", hflip_tta=False, gamma=1.0, gamma_mode="fixed")
    assert not np.allclose(flip_horizontal(plain(images.flip(-1)).numpy(), 1.0), plain(images).numpy(), atol=1e-4)


def test_ensemble_teacher_is_the_weighted_mean_at_each_members_size(tmp_path):
    a, b = _odd_shape(), _odd_shape() + 0.1
    _constant_teacher(tmp_path / "a.pt", a, size=SIZE)
    _constant_teacher(tmp_path / "b.pt", b, size=2 * SIZE)
    (tmp_path / "ens.json").write_text(json.dumps({"members": [{"model": "a.pt", "weight": 3}, {"model": "b.pt", "weight": 1}]}))
    teacher = Teacher.from_file(tmp_path / "ens.json", hflip_tta=False, gamma=1.0, gamma_mode="fixed")
    out = teacher(torch.rand(2, 3, SIZE, SIZE) * 255).numpy()
    np.testing.assert_allclose(out, np.broadcast_to(0.75 * a + 0.25 * b, out.shape), atol=1e-5)
    assert teacher.record["teacher_mb"] > 0


def test_teacher_refusals_are_one_line(tmp_path):
    with pytest.raises(FacelmError, match="ensemble spec not found"):
        Teacher.from_file(tmp_path / "none.json", True, 1.0, "fixed")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(FacelmError, match="not an ensemble spec"):
        Teacher.from_file(tmp_path / "bad.json", True, 1.0, "fixed")
    _constant_teacher(tmp_path / "t.pt", _odd_shape())
    with pytest.raises(FacelmError, match="gamma"):
        Teacher.from_file(tmp_path / "t.pt", True, 1.4, "fixed")


def test_student_is_pulled_towards_the_teacher(demo_data, tmp_path):
    """Same seed and schedule: the student under a (deliberately wrong) teacher ends nearer the
    teacher's points than one trained on the labels alone, and nearer still with more weight."""
    shape = _odd_shape()
    teacher = _constant_teacher(tmp_path / "teacher.pt", shape)
    distances = {}
    for weight in (0.0, 0.5, 1.0):
        config = _config(demo_data, tmp_path, distill={"weight": weight})
        out = tmp_path / f"w{weight}"
        metrics = distill(config, teacher, out)
        assert metrics["distill_weight"] == weight and metrics["teacher"] == str(teacher)
        pred = np.load(out / "val_pred.npy") / 384
        distances[weight] = float(np.linalg.norm(pred - shape, axis=-1).mean())
    assert distances[1.0] < distances[0.5] < distances[0.0], distances
    saved = json.loads((tmp_path / "w0.5" / "metrics.json").read_text())
    assert saved["teacher_mb"] > 0 and saved["fold"] is None


def test_over_budget_teacher_gives_a_student_within_budget(demo_data, tmp_path, capsys):
    """The teacher may exceed budget_mb (it is never submitted); the student may not."""
    teacher = _constant_teacher(tmp_path / "big.pt", _odd_shape(), name="mobilenetv3_small_100")
    student_mb = model_size_mb(create_model("mobilenetv3_small_050", head="regression"))
    budget = round(student_mb + 0.05, 2)
    config_path = tmp_path / "config.yaml"
    import yaml

    config = _config(demo_data, tmp_path, budget_mb=budget, train={"epochs": 1})
    config_path.write_text(yaml.safe_dump(config.to_dict()))
    assert json.loads(json.dumps(torch.load(teacher, weights_only=True)["meta"]))["size_mb"] > budget
    out = tmp_path / "student"
    assert cli_main(["distill", "--config", str(config_path), "--teacher", str(teacher), "--out", str(out)]) == 0
    assert (out / "model.pt").exists()
    assert "student val NME" in capsys.readouterr().out
    small = config.updated(budget_mb=student_mb - 0.1)
    with pytest.raises(FacelmError, match="over the budget"):
        distill(small, teacher, tmp_path / "refused")


def test_distill_config_defaults_and_validation():
    config = parse_config({"data_dir": ".", "train_sets": ["x"], "models": [{"name": "pfld_025"}]})
    assert config.distill.enabled is False and config.distill.weight == 0.5 and config.distill.hflip_tta
    assert config.distill.student == ModelSpec("mobilenetv3_small_100", {"head": "heatmap"})
    with pytest.raises(FacelmError, match="distill.weight"):
        parse_config({"data_dir": ".", "train_sets": ["x"], "models": [{"name": "pfld_025"}], "distill": {"weight": 2}})


def test_challenge_mode_submits_the_student_of_an_over_budget_teacher(tiny_pipeline, tmp_path):
    """Fold models -> teacher ensemble (over budget_mb) -> student -> the single-model spec is the student."""
    from facelm.challenge.ensemble import build_ensemble, teacher_config
    from facelm.atomic import write_json

    config, runs = tiny_pipeline
    sizes = [json.loads((r / "metrics.json").read_text())["size_mb"] for r in runs]
    config = config.updated(budget_mb=max(sizes) - 0.01, ensemble={"single_model": True},
                            distill={"enabled": True, "weight": 0.5, "student": {"name": "pfld_025"}})
    teacher_spec = build_ensemble(teacher_config(config), runs)
    assert teacher_spec["total_mb"] > config.budget_mb and not teacher_spec["single_model"]
    write_json(tmp_path / "teacher.json", teacher_spec)
    student = tmp_path / "student"
    distill(config, tmp_path / "teacher.json", student)
    spec = build_ensemble(config, [student])
    assert [m["model"] for m in spec["members"]] == [str(student / "model.pt")]
    assert spec["total_mb"] <= config.budget_mb and spec["single_model"]
