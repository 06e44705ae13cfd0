"""Head pose (yaw, pitch, roll) from 68 2D landmarks, by ``cv2.solvePnP`` against a mean 3D face.

The 3D model is the six-point generic face widely used for head pose with OpenCV
(S. Mallick, "Head Pose Estimation using OpenCV and Dlib", LearnOpenCV, 2016): nose tip,
chin, outer eye corners, mouth corners, in millimetre-like units. It is written here in
camera axes (x to the image right, y down, z away from the camera), so a frontal face has
rotation ~ identity. The camera is a pinhole with focal length = image size and the
principal point at the image centre. ``cv2.solvePnP`` has no batch form, so this loops over
faces (~0.1 ms each). Torch-free (the inference-only install reports pose); the training-side
wrappers are in :mod:`facelm.models.pose`.

Signs: yaw > 0 when the face turns towards the image right, pitch > 0 when it looks down,
roll > 0 for a clockwise in-plane rotation in the image.
"""

from __future__ import annotations

import cv2
import numpy as np

#: iBUG indices of the model points: nose tip, chin, outer eye corners (36, 45), mouth corners.
POSE_POINTS = np.array([30, 8, 36, 45, 48, 54])
MODEL_3D = np.array(
    [
        [0.0, 0.0, 0.0],
        [0.0, 330.0, 65.0],
        [-225.0, -170.0, 135.0],
        [225.0, -170.0, 135.0],
        [-150.0, 150.0, 125.0],
        [150.0, 150.0, 125.0],
    ],
    dtype=np.float64,
)


def _euler(rotation: np.ndarray) -> tuple[float, float, float]:
    r = rotation
    yaw = np.arcsin(np.clip(-r[2, 0], -1.0, 1.0))
    pitch = np.arctan2(r[2, 1], r[2, 2])
    roll = np.arctan2(r[1, 0], r[0, 0])
    return float(-yaw), float(pitch), float(roll)


def pose_from_landmarks(landmarks_px: np.ndarray, image_size: float) -> np.ndarray:
    """(N, 68, 2) pixel landmarks -> (N, 3) float32 yaw, pitch, roll in radians."""
    pts = np.asarray(landmarks_px, dtype=np.float64).reshape(-1, 68, 2)
    camera = np.array([[image_size, 0, image_size / 2], [0, image_size, image_size / 2], [0, 0, 1]], np.float64)
    out = np.zeros((len(pts), 3), np.float32)
    for i, face in enumerate(pts):
        image_points = np.ascontiguousarray(face[POSE_POINTS])
        rvec = np.zeros(3)
        tvec = np.array([0.0, 0.0, 1000.0 * image_size / max(np.ptp(image_points[:, 0]), 1e-3) * 0.45])
        ok, rvec, tvec = cv2.solvePnP(MODEL_3D, image_points, camera, None, rvec, tvec,
                                      useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE)
        if ok:
            out[i] = _euler(cv2.Rodrigues(rvec)[0])
    return out
