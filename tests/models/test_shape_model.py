"""The PCA shape model: Procrustes pose removal, exact reconstruction, clipping, buffers."""

from __future__ import annotations

import math

import numpy as np
import torch

from facelm.data.annot import load_annot
from facelm.landmarks68 import mean_shape
from facelm.models.shape_model import ShapeModel, apply_pose


def _shapes(n: int = 40, seed: int = 0) -> np.ndarray:
    """Mean shape + random non-rigid noise under random similarity poses, normalised coords."""
    rng = np.random.default_rng(seed)
    base = mean_shape(384) / 384
    shapes = base[None] + rng.normal(0, 0.01, (n, 68, 2))
    angle = rng.uniform(-0.5, 0.5, n)
    scale = rng.uniform(0.7, 1.2, n)
    centre = base.mean(axis=0)
    rot = np.stack([np.cos(angle), -np.sin(angle), np.sin(angle), np.cos(angle)], 1).reshape(n, 2, 2) * scale[:, None, None]
    return (np.einsum("nij,nkj->nki", rot, shapes - centre) + centre + rng.normal(0, 0.02, (n, 1, 2))).astype(np.float32)


def test_all_modes_reconstruct_training_shapes_exactly():
    shapes = _shapes()
    model = ShapeModel(136).fit(shapes)
    x = torch.from_numpy(shapes)
    coeffs, pose = model.encode(x)
    assert coeffs.shape == (40, 136) and pose.shape == (40, 4)
    assert torch.allclose(model.reconstruct(coeffs, pose), x, atol=1e-5)


def test_pose_is_removed_before_pca():
    shapes = _shapes(n=30)
    model = ShapeModel(8).fit(shapes)
    x = torch.from_numpy(shapes)
    # a rotated, scaled, shifted copy has the same coefficients and a different pose
    pose = torch.tensor([[0.8 * math.cos(0.3), 0.8 * math.sin(0.3), 0.1, -0.05]]).repeat(30, 1)
    moved = apply_pose(x, pose)
    c1, p1 = model.encode(x)
    c2, p2 = model.encode(moved)
    assert torch.allclose(c1, c2, atol=1e-5)
    assert not torch.allclose(p1, p2, atol=1e-3)
    # the first modes hold most of the variance; eigenvalues sorted, cumulative ratio rising
    assert (model.eigenvalues[:-1] >= model.eigenvalues[1:]).all()
    assert (model.explained[1:] >= model.explained[:-1]).all() and 0 < model.explained[-1] <= 1


def test_fewer_modes_approximate_and_clip_bounds_coefficients():
    shapes = _shapes()
    x = torch.from_numpy(shapes)
    model = ShapeModel(5).fit(shapes)
    coeffs, pose = model.encode(x)
    approx = model.reconstruct(coeffs, pose)
    err5 = (approx - x).norm(dim=-1).mean()
    err_mean = (model.reconstruct(torch.zeros_like(coeffs), pose) - x).norm(dim=-1).mean()
    assert err5 < err_mean  # the modes explain part of the shape

    big = torch.full((2, 5), 10.0) * model.eigenvalues.sqrt()
    clipped = model.clip(big * torch.tensor([[1.0], [-1.0]]))
    assert torch.allclose(clipped[0], 3 * model.eigenvalues.sqrt()) and torch.allclose(clipped[1], -3 * model.eigenvalues.sqrt())
    small = 0.5 * model.eigenvalues.sqrt().expand(2, 5)
    assert torch.equal(model.clip(small), small)


def test_regularise_keeps_only_main_modes():
    shapes = _shapes()
    x = torch.from_numpy(shapes)
    model = ShapeModel(10).fit(shapes)
    two = model.regularise(x, n_modes=2)
    coeffs = model.project(two)
    assert coeffs[:, 2:].abs().max() < 1e-4
    assert (coeffs[:, :2].abs() <= 3 * model.eigenvalues[:2].sqrt() + 1e-5).all()


def test_unfitted_model_is_the_generic_mean_shape_and_state_dict_round_trips():
    fresh = ShapeModel(6)
    generic = torch.from_numpy(mean_shape(384) / 384).float()
    assert torch.allclose(fresh.reconstruct(torch.zeros(1, 6), fresh.mean_pose[None])[0], generic, atol=1e-5)
    fitted = ShapeModel(6).fit(_shapes())
    again = ShapeModel(6)
    again.load_state_dict(fitted.state_dict())
    x = torch.from_numpy(_shapes(5, seed=3))
    assert torch.allclose(again.project(x), fitted.project(x))


def test_modes_for_95_percent_on_300w(train_300w):
    _, landmarks = load_annot(train_300w / "annot.pkl")
    norm = landmarks / 384
    n95 = ShapeModel.modes_for_variance(norm, 0.95)
    n98 = ShapeModel.modes_for_variance(norm, 0.98)
    # measured: 17 modes explain 95% and 30 explain 98% of the aligned 300-W training shapes
    assert 10 <= n95 <= 25 and n95 < n98 <= 40
    model = ShapeModel.from_landmarks(norm, 0.95)
    assert model.n_modes == n95 and model.explained[-1] >= 0.95
    x = torch.from_numpy(norm[:100]).float()
    err_px = (model.reconstruct(*model.encode(x)) - x).norm(dim=-1).mean() * 384
    assert err_px < 4.0  # 95% of the variance: a few pixels on a 384 crop
