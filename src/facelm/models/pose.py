"""Pose targets of a training batch (torch), from :func:`facelm.data.pose.pose_from_landmarks`."""

from __future__ import annotations

import torch

from facelm.data.pose import pose_from_landmarks


def pose_targets(landmarks_norm: torch.Tensor, image_size: int) -> torch.Tensor:
    """Pose ground truth (B, 3) for a training batch of normalised landmarks, on their device."""
    pts = landmarks_norm.detach().cpu().numpy() * image_size
    return torch.from_numpy(pose_from_landmarks(pts, image_size)).to(landmarks_norm.device)
