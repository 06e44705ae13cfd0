"""Every registered model, parametrised over the registry: a new model is tested the moment it
is registered (the idea of timm's tests/test_models.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facelm.errors import FacelmError
from facelm.landmarks68 import mean_shape
from facelm.landmarks68 import GROUPS
from facelm.models import create_model, family_of, list_families, list_models, model_size_mb, resolve_name
from facelm.models.losses import create_loss

BUDGET_MB = 15.0
SIZE = 96


def _batch(n: int = 2, size: int = SIZE, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    shape = mean_shape(size) / size
    landmarks = shape[None] + rng.normal(0, 0.01, (n, 68, 2))
    return {
        "image": torch.from_numpy(rng.uniform(0, 255, (n, 3, size, size)).astype(np.float32)),
        "landmarks": torch.from_numpy(landmarks.astype(np.float32)),
    }


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _build_kwargs(name: str, shared_data) -> dict:
    """What a family needs to be built for training: the 3DMM head needs the face model's bases."""
    if name.startswith("bfm3d"):
        return {"bfm": shared_data("..", "models", "3ddfa_v2")}
    return {}


@pytest.mark.parametrize("name", list_models())
def test_model_forward_loss_and_size(name, shared_data):
    model = create_model(name, **_build_kwargs(name, shared_data))
    batch = _batch()
    model.fit_priors(batch["landmarks"].numpy().repeat(8, axis=0))
    model.train()
    out = model(batch["image"])
    assert out["landmarks"].shape == (2, 68, 2)
    assert torch.isfinite(out["landmarks"]).all()
    total, parts = model.loss(out, batch, create_loss("l1"))
    assert torch.isfinite(total) and total.ndim == 0
    assert parts, "a loss reports its parts"
    total.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)

    model.eval()
    with torch.no_grad():
        landmarks = model(batch["image"][:1])["landmarks"]
    assert landmarks.shape == (1, 68, 2)
    assert 0 < model_size_mb(model) <= BUDGET_MB, f"{name} is {model_size_mb(model):.2f} MB"


@pytest.mark.parametrize("name", list_models())
def test_every_loss_term_honours_the_point_weights(name, shared_data):
    """A point weighing 0 leaves the loss unchanged whatever its label (every term: points, heatmaps,
    offsets, pose and shape-model targets); weights of 1 are the unweighted loss; a weighted point's
    label does change it (so the first check can fail)."""
    model = create_model(name, **_build_kwargs(name, shared_data))
    batch = _batch()
    model.fit_priors(batch["landmarks"].numpy().repeat(8, axis=0))
    model.train()
    out = model(batch["image"])
    point_loss = create_loss("wing")
    jaw = GROUPS["jaw"]
    other_jaw = batch["landmarks"].clone()
    other_jaw[0, jaw] += torch.tensor([0.05, -0.04])  # sample 0's jaw in "another convention"
    no_jaw = torch.ones(2, 68)
    no_jaw[0, jaw] = 0.0

    def total(landmarks, weights=None):
        extra = {} if weights is None else {"point_weights": weights}
        return float(model.loss(out, {**batch, "landmarks": landmarks, **extra}, point_loss)[0].detach())

    assert total(batch["landmarks"], no_jaw) == pytest.approx(total(other_jaw, no_jaw), rel=1e-6, abs=1e-7)
    assert total(batch["landmarks"], torch.ones(2, 68)) == pytest.approx(total(batch["landmarks"]), rel=1e-6)
    assert total(batch["landmarks"], torch.ones(2, 68)) != pytest.approx(total(other_jaw, torch.ones(2, 68)), rel=1e-4)


@pytest.mark.parametrize("name", list_models())
def test_model_spec_rebuilds_the_same_architecture(name):
    model = create_model(name)
    assert model.spec["name"] == name
    again = create_model(model.spec["name"], **model.spec["kwargs"])
    assert again.state_dict().keys() == model.state_dict().keys()


@pytest.mark.parametrize("family", sorted(list_families()))
def test_family_name_gives_a_default_within_budget(family):
    model = create_model(family)
    assert model.spec["name"] == resolve_name(family)
    assert model_size_mb(model) <= BUDGET_MB


def test_the_seed_methods_are_registered():
    for family in ("pfld", "asmnet", "hourglass", "slpt", "synergy", "convnext_dml"):
        assert family in list_families(), family
    for name in ("mobilenetv3_small_100", "mobilenetv3_large_100", "convnext_atto", "pfld_025", "pfld_100"):
        assert name in list_models(), name


def test_every_model_records_its_family():
    families = {name: family_of(name) for name in list_models()}
    assert families["pfld_025"] == family_of("pfld") == "pfld" and families["slpt_1s"] == "slpt"
    assert families["mobilenetv3_small_100"] == families["ghostnet_100"] == "timm_models"
    assert set(list_families()) <= set(families.values())


def test_unknown_model_is_one_line_error():
    with pytest.raises(FacelmError, match="unknown model 'resnet9000'") as err:
        create_model("resnet9000")
    assert "\n" not in str(err.value)


def test_a_value_a_builder_refuses_is_one_line_error():
    """A misspelt head is refused by the builder (a ValueError there): one FacelmError line here."""
    with pytest.raises(FacelmError, match="head must be one of") as err:
        create_model("mobilenetv3_small_050", head="heatmapp")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", ["efficientnet_lite0", "mobilenetv3_small_100"])
def test_max_stride_builds_only_the_stages_it_keeps(name):
    """`max_stride: 16` drops the stride-32 maps and the blocks that only feed them (timm's
    `out_indices` alone still computes them), and the saved spec rebuilds the cut network."""
    full, cut = create_model(name, head="heatmap"), create_model(name, head="heatmap", max_stride=16)
    assert cut.backbone.feature_info.reduction()[-1] == 16
    assert len(cut.backbone.blocks) < len(full.backbone.blocks)
    assert sum(p.numel() for p in cut.parameters()) < sum(p.numel() for p in full.parameters())
    assert all(key in full.backbone.state_dict() for key in cut.backbone.state_dict())
    batch = _batch()
    assert cut(batch["image"])["landmarks"].shape == (2, 68, 2)
    again = create_model(cut.spec["name"], **cut.spec["kwargs"])
    assert again.state_dict().keys() == cut.state_dict().keys()


def test_last_stage_depth_keeps_the_first_blocks_of_the_deepest_kept_stage():
    """`last_stage_depth: 1` after a stride-16 cut keeps that stage's first block: same strides and
    widths out, fewer parameters, every tensor still one of the full network's (ImageNet weights load)."""
    cut = create_model("efficientnet_lite0", head="heatmap", max_stride=16)
    short = create_model("efficientnet_lite0", head="heatmap", max_stride=16, last_stage_depth=1)
    assert len(short.backbone.blocks[-1]) == 1 < len(cut.backbone.blocks[-1])
    assert short.backbone.feature_info.channels() == cut.backbone.feature_info.channels()
    assert all(key in cut.backbone.state_dict() for key in short.backbone.state_dict())
    assert sum(p.numel() for p in short.parameters()) < sum(p.numel() for p in cut.parameters())
    assert short(_batch()["image"])["landmarks"].shape == (2, 68, 2)
    again = create_model(short.spec["name"], **short.spec["kwargs"])
    assert again.state_dict().keys() == short.state_dict().keys()


@pytest.mark.parametrize("kwargs, message", [({"last_stage_depth": 1}, "last_stage_depth needs max_stride"),
                                             ({"max_stride": 16, "last_stage_depth": 9}, "last_stage_depth must be 1..3")])
def test_bad_last_stage_depth_is_one_line(kwargs, message):
    with pytest.raises(FacelmError, match=message):
        create_model("efficientnet_lite0", head="heatmap", **kwargs)


def test_max_stride_that_keeps_nothing_is_one_line():
    with pytest.raises(FacelmError, match="max_stride 1 keeps none of efficientnet_lite0's strides"):
        create_model("efficientnet_lite0", head="heatmap", max_stride=1)


def test_pfld_counts_without_its_training_only_pose_branch():
    """PFLD's auxiliary pose net feeds the training loss alone; the export drops it, and so do the
    parameter count and the MB the budget reads."""
    import torch

    from facelm.inference.pytorch.export import LandmarkGraph
    from facelm.models import count_params

    model = create_model("pfld_025")
    aux = sum(p.numel() for p in model.aux.parameters())
    assert aux > 0 and count_params(model) == sum(p.numel() for p in model.parameters()) - aux
    aux_tensors = sum(t.numel() for t in (*model.aux.parameters(), *model.aux.buffers()))
    assert model_size_mb(model) == (sum(t.numel() for t in model.state_dict().values()) - aux_tensors) * 4 / 2**20
    assert count_params(LandmarkGraph([model], [1.0], [96])) == count_params(model)  # what the export card reads
    model.eval()
    with torch.no_grad():
        assert set(model(torch.zeros(1, 3, 96, 96))) == {"landmarks"}
