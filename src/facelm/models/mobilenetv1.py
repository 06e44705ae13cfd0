"""MobileNetV1 (Howard et al., 2017) with a width multiplier, laid out like 3DDFA_V2's network.

Layer names (``conv1``, ``bn1``, ``dw2_1`` ... ``dw6``, each ``conv_dw``/``bn_dw``/``conv_sep``/
``bn_sep``) match 3DDFA_V2's ``mobilenet_v1.py``, so its checkpoints load by name. The backbone
ends in a global average pool; what follows (62 3DMM parameters, 136 offsets) is the caller's.
"""

from __future__ import annotations

import torch
import torch.nn as nn

#: (name, output channels at width 1.0, stride) of the 13 depthwise-separable blocks.
BLOCKS = (
    ("dw2_1", 64, 1), ("dw2_2", 128, 2), ("dw3_1", 128, 1), ("dw3_2", 256, 2), ("dw4_1", 256, 1),
    ("dw4_2", 512, 2), ("dw5_1", 512, 1), ("dw5_2", 512, 1), ("dw5_3", 512, 1), ("dw5_4", 512, 1),
    ("dw5_5", 512, 1), ("dw5_6", 1024, 2), ("dw6", 1024, 1),
)


class DepthWiseBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int):
        super().__init__()
        self.conv_dw = nn.Conv2d(inplanes, inplanes, 3, stride=stride, padding=1, groups=inplanes, bias=False)
        self.bn_dw = nn.BatchNorm2d(inplanes)
        self.conv_sep = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn_sep = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn_dw(self.conv_dw(x)))
        return self.relu(self.bn_sep(self.conv_sep(x)))


class MobileNetV1(nn.Module):
    """Features ``(B, 1024 * width)`` after global average pooling; ``num_features`` says how many."""

    def __init__(self, width: float = 0.5):
        super().__init__()
        channels = int(32 * width)
        self.conv1 = nn.Conv2d(3, channels, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        for name, planes, stride in BLOCKS:
            setattr(self, name, DepthWiseBlock(channels, int(planes * width), stride))
            channels = int(planes * width)
        self.num_features = channels
        self.avgpool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        for name, _, _ in BLOCKS:
            x = getattr(self, name)(x)
        return self.avgpool(x).flatten(1)
