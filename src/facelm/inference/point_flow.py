"""Optical flow of tracked landmarks between two frames: how each face moved, and whether new points still sit on it.

Pyramidal Lucas-Kanade (``cv2.calcOpticalFlowPyrLK``) moves last frame's 68 points of every face
to this frame and back; a point counts only when both passes find it and it comes back within
:data:`FB_MAX` of a face size (forward-backward check). From the kept points:

- :func:`face_motion`: each face's similarity motion (shift, scale, turn; RANSAC over the points),
  which moves its crop *before* the model looks, so a moving face stays where the model expects
  it in the crop;
- :func:`agreement`: the fraction of the 68 points the model put where the flow carried them (within
  :data:`AGREE` of a face size) -- a face-presence score. On a face both follow the same features;
  a crop over empty background gets points the flow does not confirm (no texture to follow, or
  the model's near-centre guess where the flow went elsewhere), and the score drops.
"""

from __future__ import annotations

import cv2
import numpy as np

#: a point is kept when its forward-backward round trip ends within this fraction of the face size
FB_MAX = 0.02
#: a predicted point agrees with the flow within this fraction of the face size
AGREE = 0.08
#: Lucas-Kanade window and pyramid levels (a 21 px window over 4 levels follows ~100 px per frame)
_LK = {"winSize": (21, 21), "maxLevel": 3, "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03)}


def flow_points(previous: np.ndarray, current: np.ndarray, points: np.ndarray, sizes: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Grey frames (H, W) uint8 and points (K, P, 2) of the previous one (continuous pixel coordinates),
    face sizes (K,) -> (points moved to the current frame (K, P, 2), kept (K, P) bool)."""
    k, p = points.shape[:2]
    # continuous coordinates -> OpenCV's pixel-centre coordinates and back
    start = (points.reshape(-1, 1, 2) - 0.5).astype(np.float32)
    moved, found, _ = cv2.calcOpticalFlowPyrLK(previous, current, start, None, **_LK)
    back, found_back, _ = cv2.calcOpticalFlowPyrLK(current, previous, moved, None, **_LK)
    round_trip = np.linalg.norm((back - start).reshape(k, p, 2), axis=2)
    kept = (found.reshape(k, p) == 1) & (found_back.reshape(k, p) == 1) & (round_trip < FB_MAX * sizes[:, None])
    return moved.reshape(k, p, 2).astype(np.float64) + 0.5, kept


def face_motion(points: np.ndarray, moved: np.ndarray, kept: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """(K, 2, 3) similarity transforms previous -> current frame (identity for a face with under 8 kept points)."""
    motions = np.tile(np.eye(2, 3), (len(points), 1, 1))
    for i in range(len(points)):
        if kept[i].sum() >= 8:
            found, _ = cv2.estimateAffinePartial2D(points[i, kept[i]], moved[i, kept[i]], method=cv2.RANSAC,
                                                   ransacReprojThreshold=max(1.0, 0.03 * float(sizes[i])))
            if found is not None:
                motions[i] = found
    return motions


def move_frames(frames: tuple[np.ndarray, np.ndarray, np.ndarray], motions: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Landmark frames (centres (K, 2), sizes (K,), rolls (K,)) carried by similarity motions (K, 2, 3)."""
    centres, sizes, rolls = frames
    linear = motions[:, :, :2]
    scale = np.sqrt(np.abs(np.linalg.det(linear)))
    turn = np.arctan2(linear[:, 1, 0], linear[:, 0, 0])
    moved = np.einsum("kij,kj->ki", linear, centres) + motions[:, :, 2]
    return moved, sizes * scale, rolls + turn


def agreement(predicted: np.ndarray, moved: np.ndarray, kept: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """(K,) fraction of the points that the flow kept and the model put within :data:`AGREE` of a face size of them."""
    close = np.linalg.norm(predicted - moved, axis=2) < AGREE * sizes[:, None]
    return (close & kept).mean(axis=1)
