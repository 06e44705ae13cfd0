"""The head in 3D: a mean 68-point face, the camera that fits it to 2D points, the head pose that
camera gives, and which of the 68 points the head itself hides.

    poses, visible = head_pose_and_visibility(points)   # (K, 68, 2) -> (K, 3) degrees, (K, 68) bool

**The face.** ``weights/mean_face_68.npy``: (68, 3) float32 millimetres in image axes (x right, y down,
z towards the camera), the mean shape of the 68-point Basel Face Model as modified by 3DDFA
(:func:`facelm.models.bfm.write_mean_face` writes it from ``bfm68_bases.npz``; the BFM's terms,
non-commercial research, are those of the shipped weights, which decode through the same bases).

**The camera.** A scaled orthographic projection fitted by least squares (an affine 2x3 map, then
its nearest scaled rotation), batched over faces. Orthographic is right for a face: its depth is
small next to its distance from the camera, and no focal length has to be guessed.

**Normals.** 68 points are too sparse for a mesh, so each point's outward normal follows a
head-shaped rule. Horizontally it points away from a vertical axis on the face's midline, at the
depth of the jaw line's two ends (points 0 and 16, beside the ears): those two face sideways, the
nose ridge straight ahead, an outer eye corner about 30 degrees out, a mouth corner about 18.
Vertically, half of the point's height above or below those ends tilts it up (brows) or down (chin).

**Visibility.** A point is hidden when its turned normal faces more than :data:`HIDDEN_PAST_DEG`
beyond the silhouette, away from the camera: on a full profile the far eye, brow, jaw and mouth
corner; on a half profile the far jaw. It says what the head's own shape hides, not hands, hair or
glasses. Numpy only (the inference-only install has no torch).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

MEAN_FACE_FILE = Path(__file__).resolve().parents[1] / "weights" / "mean_face_68.npy"
#: a point stays visible until its surface has turned this far past the silhouette: the rule's
#: normals are coarse, and a point on the silhouette itself (a profile's nose ridge) is seen
HIDDEN_PAST_DEG = 10.0
#: how much of a point's height above or below the jaw line's ends tilts its normal up or down
VERTICAL_TILT = 0.5
#: the jaw line's ends (beside the ears): they set the vertical axis of the horizontal normals
JAW_ENDS = (0, 16)


@lru_cache(maxsize=1)
def mean_face() -> np.ndarray:
    """(68, 3) float64 millimetres, image axes (x right, y down, z towards the camera)."""
    return np.load(MEAN_FACE_FILE).astype(np.float64)


@lru_cache(maxsize=1)
def mean_face_normals() -> np.ndarray:
    """The mean face's (68, 3) unit normals, computed once (every face of every frame uses them)."""
    return outward_normals(mean_face())


def outward_normals(face: np.ndarray) -> np.ndarray:
    """(68, 3) unit normals of the 68 points of ``face`` by the head-shaped rule (module docstring)."""
    axis = face[list(JAW_ENDS)].mean(axis=0)
    out = face - axis
    out[:, 1] *= VERTICAL_TILT
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def scaled_orthographic(points3d: np.ndarray, points2d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per face, the scaled orthographic camera taking (N, P, 3) points to (N, P, 2) image points:
    orthonormal rows (N, 2, 3), scale (N,), shift (N, 2) with ``x = scale * rows @ X + shift``."""
    points3d = np.broadcast_to(points3d, points2d.shape[:2] + (3,))
    centred_3d = points3d - points3d.mean(axis=1, keepdims=True)
    centred_2d = points2d - points2d.mean(axis=1, keepdims=True)
    gram = np.einsum("nki,nkj->nij", centred_3d, centred_3d)
    cross = np.einsum("nki,nkj->nij", centred_2d, centred_3d)  # (N, 2, 3)
    affine = cross @ np.linalg.inv(gram)  # the least-squares A (2x3) of |A X - x|^2
    u, singular, vt = np.linalg.svd(affine, full_matrices=False)
    rows = u @ vt  # the nearest orthonormal rows
    scale = singular.mean(axis=1)
    shift = points2d.mean(axis=1) - scale[:, None] * np.einsum("nij,nj->ni", rows, points3d.mean(axis=1))
    return rows, scale, shift


def head_rotations(landmarks: np.ndarray) -> np.ndarray:
    """(N, 68, 2) image points -> (N, 3, 3) rotations taking the mean face's axes to the image's
    (rows: image x, image y, towards the camera)."""
    rows, _, _ = scaled_orthographic(mean_face()[None], np.asarray(landmarks, np.float64).reshape(-1, 68, 2))
    return np.concatenate([rows, np.cross(rows[:, 0], rows[:, 1])[:, None]], axis=1)


def euler_deg(rotations: np.ndarray) -> np.ndarray:
    """(N, 3, 3) head rotations -> (N, 3) float32 yaw, pitch, roll in degrees, with
    :mod:`facelm.data.pose`'s signs: yaw > 0 turned towards the image right, pitch > 0 looking down,
    roll > 0 turned clockwise in the image."""
    forward, down = rotations[:, :, 2], rotations[:, :, 1]  # where the face looks, and its chin-ward axis
    yaw = np.arctan2(forward[:, 0], forward[:, 2])
    pitch = np.arcsin(np.clip(forward[:, 1], -1.0, 1.0))
    roll = np.arctan2(-down[:, 0], down[:, 1])  # from the chin-ward axis: defined on full profiles too
    return np.degrees(np.stack([yaw, pitch, roll], axis=1)).astype(np.float32)


def visibility(rotations: np.ndarray) -> np.ndarray:
    """(N, 3, 3) head rotations -> (N, 68) bool: True where the head does not hide the point."""
    towards_camera = np.einsum("nj,kj->nk", rotations[:, 2], mean_face_normals())
    return towards_camera > -np.sin(np.radians(HIDDEN_PAST_DEG))


def head_pose_and_visibility(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 68, 2) image points -> ((N, 3) yaw, pitch, roll degrees, (N, 68) visible), from one fit."""
    landmarks = np.asarray(landmarks, np.float64).reshape(-1, 68, 2)
    if not len(landmarks):
        return np.zeros((0, 3), np.float32), np.zeros((0, 68), bool)
    rotations = head_rotations(landmarks)
    return euler_deg(rotations), visibility(rotations)
