"""The teacher-started student: the teacher's network slicing its ROI out of a smaller crop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facelm.data.folder import imread_rgb, list_images
from facelm.data.preprocess import preprocess_images
from facelm.models import create_model
from facelm.models.checkpoint import load_model
from facelm.models.tddfa_student import roi_slice


@pytest.fixture(scope="module")
def tddfa_dir(shared_data):
    return shared_data("..", "models", "3ddfa_v2")


def test_roi_slice_is_the_teachers_roi_in_whole_pixels():
    for side in (128, 166, 384):
        x0, y0, roi = roi_slice(side)
        assert abs(roi / side - 0.51 * np.sqrt(2)) < 1 / side
        assert abs((x0 + roi / 2) / side - 0.5) < 1 / side and abs((y0 + roi / 2) / side - 0.58) < 1 / side
        assert x0 >= 0 and y0 + roi <= side


@torch.no_grad()
def test_started_from_the_teacher_it_predicts_like_the_teacher(tddfa_dir, aflw_val):
    """At 166 px the slice is the teacher's 120-pixel ROI: before any training the student's points are
    the teacher's (but for the half ROI pixel the teacher adds and resampling), so training starts there."""
    names = list_images(aflw_val)[:16]
    crops = [imread_rgb(aflw_val / n) for n in names]
    student = create_model("tddfa_student", teacher=tddfa_dir).eval()
    teacher, _ = load_model(f"3ddfa_v2:{tddfa_dir}")
    mine = student(torch.from_numpy(preprocess_images(crops, 166)))["landmarks"] * 384
    theirs = teacher(torch.from_numpy(preprocess_images(crops, 384)))["landmarks"] * 384
    assert float((mine - theirs).norm(dim=-1).median()) < 2.5  # px of the 384 crop


def test_it_saves_reloads_and_exports_without_the_teacher_folder(tddfa_dir, tmp_path):
    from facelm.inference.pytorch.export import export_onnx
    from facelm.inference.loading import load_predictor
    from facelm.models.checkpoint import save_checkpoint

    model = create_model("tddfa_student", teacher=tddfa_dir).eval()
    assert "teacher" not in model.spec["kwargs"]  # a saved model does not need the folder
    path = tmp_path / "model.pt"
    save_checkpoint(path, model, {"input_size": 128, "gamma": 1.0, "gamma_mode": "fixed"})
    reloaded, meta = load_model(path)
    images = torch.rand(2, 3, 128, 128) * 255
    assert torch.allclose(reloaded(images)["landmarks"], model(images)["landmarks"], atol=1e-5)
    export_onnx(path, tmp_path / "model.onnx")
    crops = (np.random.default_rng(0).random((2, 384, 384, 3)) * 255).astype(np.uint8)
    points = load_predictor(tmp_path / "model.onnx").predict(crops)
    assert points.shape == (2, 68, 2) and np.isfinite(points).all()
