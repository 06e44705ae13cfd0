"""Head pose for training: the torch wrapper of :func:`facelm.head_pose.pose_from_landmarks` and the yaw bins
used to report and balance turned faces."""

from __future__ import annotations

import numpy as np
import torch

from facelm.head_pose import pose_from_landmarks

__all__ = ["YAW_BINS", "pose_from_landmarks", "pose_targets", "yaw_bin"]


#: Label-yaw bins (degrees of |yaw|) used to report and to balance turned faces; the last is open.
YAW_BINS = ((0, 30), (30, 60), (60, 90))


def yaw_bin(abs_yaw_deg: np.ndarray) -> np.ndarray:
    """Index into :data:`YAW_BINS` of each |yaw| in degrees (60 and above: the last bin)."""
    return np.digitize(abs_yaw_deg, [high for _, high in YAW_BINS[:-1]])


def pose_targets(landmarks_norm: torch.Tensor, image_size: int) -> torch.Tensor:
    """Pose ground truth (B, 3) for a training batch of normalised landmarks, on their device."""
    pts = landmarks_norm.detach().cpu().numpy() * image_size
    return torch.from_numpy(pose_from_landmarks(pts, image_size)).to(landmarks_norm.device)
