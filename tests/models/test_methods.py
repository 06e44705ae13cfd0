"""The surveyed methods (ASMNet, stacked hourglass/ADNet, SLPT, SynergyNet-2D, ConvNeXt-DML):
registration, shapes at several input sizes, budget, gradients everywhere, a tiny overfit."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from facelm.data.annot import load_annot
from facelm.data.folder import imread_rgb
from facelm.landmarks68 import mean_shape
from facelm.models.losses import create_loss
from facelm.models import create_model, list_families, list_models, model_size_mb
from facelm.models.hourglass import SEGMENT_GROUPS, edge_heatmaps

FAMILIES = {
    "asmnet": ("asmnet_100", ["asmnet_050", "asmnet_100"]),
    "hourglass": ("hourglass_s", ["hourglass_s", "hourglass_adnet"]),
    "slpt": ("slpt_2s", ["slpt_1s", "slpt_2s"]),
    "synergy": ("synergy_100", ["synergy_050", "synergy_100"]),
    "convnext_dml": ("convnext_dml_s", ["convnext_dml_s", "convnext_dml_t"]),
}
VARIANTS = [v for _, variants in FAMILIES.values() for v in variants]
#: the cheap variants run by default (keeps the file under a minute on 2 shared cores);
#: the others run the same checks with -m slow
FAST = {"asmnet_050", "slpt_1s", "synergy_050"}
FAST_OVERFIT = {"synergy_050"}


def _by_cost(names, fast):
    return [pytest.param(v, marks=[] if v in fast else pytest.mark.slow) for v in names]


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


def _landmarks(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ((mean_shape(384) / 384)[None] + rng.normal(0, 0.01, (n, 68, 2))).astype(np.float32)


@pytest.mark.parametrize("family", FAMILIES)
def test_family_default_and_variants_are_registered(family):
    default, variants = FAMILIES[family]
    assert list_families()[family] == default
    assert set(variants) <= set(list_models())
    assert create_model(family).spec["name"] == default


@pytest.mark.parametrize("name", _by_cost(VARIANTS, FAST))
def test_forward_at_several_sizes_within_budget(name):
    model = create_model(name)
    model.fit_priors(_landmarks(32))
    model.eval()
    with torch.no_grad():
        for size in (96, 128):
            out = model(torch.rand(2, 3, size, size) * 255)
            assert out["landmarks"].shape == (2, 68, 2) and torch.isfinite(out["landmarks"]).all()
            # an untrained model starts near the mean face, inside the crop
            assert out["landmarks"].min() > -0.5 and out["landmarks"].max() < 1.5
    assert 0 < model_size_mb(model) < 15.0


@pytest.mark.parametrize("name", _by_cost(VARIANTS, FAST))
def test_every_trainable_parameter_gets_a_gradient(name):
    """After one optimiser step (zero-initialised output layers become non-zero), the loss
    reaches every parameter: no dead branch."""
    model = create_model(name)
    model.fit_priors(_landmarks(32))
    model.train()
    lm = torch.from_numpy(_landmarks(2, seed=1))
    batch = {"image": torch.rand(2, 3, 64, 64) * 255, "landmarks": lm}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(2):
        optimizer.zero_grad()
        total, parts = model.loss(model(batch["image"]), batch, create_loss("wing"))
        total.backward()
        if _ == 0:
            optimizer.step()
    assert torch.isfinite(total) and "points" in parts
    dead = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)]
    assert not dead, dead
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def _demo_batch(demo_data, size: int = 64, n: int = 8) -> dict:
    folder = demo_data / "synthetics_train"
    names, landmarks = load_annot(folder / "annot.pkl")
    images = []
    for name in names[:n]:
        img = imread_rgb(folder / name)
        images.append(cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA))
    image = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
    return {"image": image, "landmarks": torch.from_numpy(landmarks[:n] / img.shape[1]).float()}


@pytest.mark.parametrize("name", _by_cost(VARIANTS, FAST_OVERFIT))
def test_tiny_overfit_lowers_the_loss(name, demo_data):
    batch = _demo_batch(demo_data)
    model = create_model(name)
    model.fit_priors(batch["landmarks"].numpy())
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    point_loss = create_loss("wing")
    losses = []
    for _ in range(30):
        total, _parts = model.loss(model(batch["image"]), batch, point_loss)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        losses.append(float(total.detach()))
    assert np.mean(losses[-3:]) < 0.7 * losses[0], losses


def test_edge_heatmaps_peak_on_the_boundaries():
    lm = torch.from_numpy(_landmarks(2))
    maps = edge_heatmaps(lm, 24, 24, sigma=1.0)
    assert maps.shape == (2, 9, 24, 24) and maps.max() <= 1
    # the midpoint of a jaw segment is on the jaw boundary, not near the eye boundary
    mid = (lm[0, 3] + lm[0, 4]) / 2 * 24
    cell = mid.long()
    assert maps[0, 0, cell[1], cell[0]] > 0.5 and maps[0, 5, cell[1], cell[0]] < 0.1
    assert SEGMENT_GROUPS.max() == 8
