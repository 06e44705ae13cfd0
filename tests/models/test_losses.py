"""Point and heatmap losses."""

from __future__ import annotations

import pytest
import torch

from facelm.models.codecs import HeatmapCodec
from facelm.errors import FacelmError
from facelm.landmarks68 import mean_shape
from facelm.models.losses import LOSS_NAMES, adaptive_wing, create_loss, wing

GT = torch.from_numpy(mean_shape(1)[None].repeat(2, 0))


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_zero_at_target_positive_elsewhere_with_gradients(name):
    loss = create_loss(name)
    assert float(loss(GT.clone(), GT)) == pytest.approx(0, abs=1e-6)
    pred = (GT + 0.01 * torch.randn_like(GT)).requires_grad_()
    value = loss(pred, GT)
    value.backward()
    assert value > 0 and pred.grad.abs().sum() > 0
    assert loss(pred, GT, reduction="none").shape == (2,)


def test_wing_is_log_like_for_small_and_linear_for_large_errors():
    def at(err_percent):
        return float(wing(GT + torch.tensor([err_percent / 100, 0.0]), GT))

    assert at(0.2) / at(0.1) > 1.5  # steep near zero
    assert at(40) - at(30) == pytest.approx(10, rel=1e-3)  # slope 1 in the linear part


def test_adnet_penalises_normal_error_more_than_tangent_error():
    loss = create_loss("adnet")
    gt = GT[:1]
    jaw_tangent = gt[0, 9] - gt[0, 7]
    tangent = jaw_tangent / jaw_tangent.norm()
    normal = torch.stack([-tangent[1], tangent[0]])
    along, across = gt.clone(), gt.clone()
    along[0, 8] += 0.02 * tangent
    across[0, 8] += 0.02 * normal
    assert float(loss(across, gt)) > float(loss(along, gt)) * 1.5


def test_adaptive_wing_on_gaussian_heatmaps():
    codec = HeatmapCodec(16, 16, 1.5)
    target = codec.encode(GT)
    target = target / target.amax(dim=(-2, -1), keepdim=True)
    assert float(adaptive_wing(target, target)) == pytest.approx(0, abs=1e-6)
    assert float(adaptive_wing(torch.zeros_like(target), target)) > 0


def test_unknown_loss():
    with pytest.raises(FacelmError, match="unknown loss 'huber2'.*wing"):
        create_loss("huber2")
