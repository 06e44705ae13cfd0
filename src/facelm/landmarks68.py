"""The 68-point iBUG landmark scheme: one home for its facts.

Coordinates are continuous pixel coordinates ``(x, y)`` in the image frame, arrays of
shape ``(..., 68, 2)``. Convention (used everywhere in facelm): pixel ``i`` covers
``[i, i + 1)``, so a resize by ``k`` is ``x * k`` and a mirror is ``width - x``. All helpers are vectorised over leading axes.
"""

from __future__ import annotations

import numpy as np

NUM_POINTS = 68

#: Index ``i`` of a horizontally flipped face takes the point ``FLIP_PERM[i]`` of the original.
FLIP_PERM = np.array(
    list(range(16, -1, -1))  # jaw 0..16 -> 16..0
    + list(range(26, 21, -1))  # right brow 17..21 <- left brow 26..22
    + list(range(21, 16, -1))  # left brow 22..26 <- right brow 21..17
    + [27, 28, 29, 30]  # nose bridge
    + [35, 34, 33, 32, 31]  # nostrils
    + [45, 44, 43, 42, 47, 46]  # right eye <- left eye
    + [39, 38, 37, 36, 41, 40]  # left eye <- right eye
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lip
    + [64, 63, 62, 61, 60, 67, 66, 65],  # inner lip
    dtype=np.int64,
)

#: Landmark groups (index lists), in iBUG order. "right"/"left" are the subject's.
GROUPS: dict[str, list[int]] = {
    "jaw": list(range(0, 17)),
    "right_brow": list(range(17, 22)),
    "left_brow": list(range(22, 27)),
    "nose_bridge": list(range(27, 31)),
    "nostrils": list(range(31, 36)),
    "right_eye": list(range(36, 42)),
    "left_eye": list(range(42, 48)),
    "outer_lip": list(range(48, 60)),
    "inner_lip": list(range(60, 68)),
}

#: The face's regions, each with its left and right together, so that a mirror image maps every
#: region onto itself (a per-region loss weight survives a flip): the ``point_weights`` regions.
REGIONS: dict[str, list[int]] = {
    "jaw": GROUPS["jaw"],
    "brows": GROUPS["right_brow"] + GROUPS["left_brow"],
    "nose_bridge": GROUPS["nose_bridge"],
    "nostrils": GROUPS["nostrils"],
    "eyes": GROUPS["right_eye"] + GROUPS["left_eye"],
    "outer_lip": GROUPS["outer_lip"],
    "inner_lip": GROUPS["inner_lip"],
}
#: The five regions accuracy is reported by (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth
#: 48-67): unions of :data:`REGIONS`.
REPORT_REGIONS: dict[str, list[int]] = {
    "jaw": REGIONS["jaw"],
    "brows": REGIONS["brows"],
    "nose": REGIONS["nose_bridge"] + REGIONS["nostrils"],
    "eyes": REGIONS["eyes"],
    "mouth": REGIONS["outer_lip"] + REGIONS["inner_lip"],
}

#: Open polylines (drawn / used for boundary tangents) and closed contours.
CLOSED_GROUPS = ("right_eye", "left_eye", "outer_lip", "inner_lip")

#: Mean shape of 1,207 real faces (300-W HELEN train + AFW), centred on the centre of
#: the landmark bounding box and divided by the box size sqrt(w*h). Used to frame crops,
#: to draw demo faces and as a detector-free fallback, never as a training target.
_MEAN_SHAPE_UNIT = np.array(
    [[-0.4953, -0.277], [-0.4905, -0.1456], [-0.4744, -0.0149], [-0.4454, 0.1116], [-0.392, 0.2279],
     [-0.3099, 0.3284], [-0.2107, 0.4104], [-0.1036, 0.4735], [0.0146, 0.4888], [0.1303, 0.4658],
     [0.2326, 0.3979], [0.3263, 0.3139], [0.4025, 0.2128], [0.4525, 0.0959], [0.4784, -0.0293],
     [0.4912, -0.1573], [0.4959, -0.2872], [-0.4067, -0.3737], [-0.3453, -0.4323], [-0.2575, -0.4515],
     [-0.1658, -0.4407], [-0.0821, -0.4091], [0.0768, -0.4162], [0.1644, -0.4481], [0.2545, -0.4591],
     [0.3409, -0.4397], [0.3989, -0.3831], [0.001, -0.3079], [0.0021, -0.2242], [0.0037, -0.1422],
     [0.0058, -0.0574], [-0.1009, 0.0047], [-0.0487, 0.0218], [0.0051, 0.0353], [0.0578, 0.0204],
     [0.1049, 0.0037], [-0.305, -0.2888], [-0.249, -0.3203], [-0.1836, -0.3191], [-0.1281, -0.2788],
     [-0.1855, -0.2678], [-0.2514, -0.2671], [0.1239, -0.2825], [0.1829, -0.3262], [0.2474, -0.3261],
     [0.3005, -0.2966], [0.2523, -0.2748], [0.1879, -0.2725], [-0.1872, 0.1623], [-0.1145, 0.1305],
     [-0.0424, 0.1153], [0.0032, 0.127], [0.0545, 0.1147], [0.1271, 0.1297], [0.1953, 0.1564],
     [0.1293, 0.226], [0.0599, 0.2573], [0.0053, 0.2636], [-0.0451, 0.259], [-0.1164, 0.23],
     [-0.1578, 0.1648], [-0.0428, 0.1564], [0.0038, 0.1609], [0.0554, 0.1551], [0.1668, 0.1604],
     [0.0561, 0.1944], [0.0038, 0.2015], [-0.0438, 0.1966]],
    dtype=np.float64,
)

#: Challenge framing of a 384x384 crop (measured on aflw_val and 300w_train): the box
#: around the 68 points is centred at (0.5, 0.58) of the crop and its size sqrt(w*h)
#: is about 0.51 of the crop side.
CROP_CENTRE = (0.5, 0.58)
CROP_BOX_FRACTION = 0.51
CHALLENGE_SIZE = 384


def mean_shape(size: int = CHALLENGE_SIZE) -> np.ndarray:
    """The mean 68-point shape framed like a challenge crop of ``size`` pixels, float32 (68, 2)."""
    centre = np.array(CROP_CENTRE) * size
    return (_MEAN_SHAPE_UNIT * CROP_BOX_FRACTION * size + centre).astype(np.float32)


def bbox(landmarks: np.ndarray) -> np.ndarray:
    """Tight box ``(x0, y0, x1, y1)`` around the points, shape ``(..., 4)``."""
    pts = np.asarray(landmarks)
    return np.concatenate([pts.min(axis=-2), pts.max(axis=-2)], axis=-1)


def box_size(landmarks: np.ndarray) -> np.ndarray:
    """``sqrt(w * h)`` of the tight box around the points, shape ``(...)``."""
    box = bbox(landmarks)
    return np.sqrt(np.maximum(box[..., 2] - box[..., 0], 0) * np.maximum(box[..., 3] - box[..., 1], 0))


def box_centre(landmarks: np.ndarray) -> np.ndarray:
    """Centre of the tight box, shape ``(..., 2)``."""
    box = bbox(landmarks)
    return (box[..., :2] + box[..., 2:]) / 2


def interocular(landmarks: np.ndarray) -> np.ndarray:
    """Outer-eye-corner distance (points 36 and 45), the usual 300-W normaliser, shape ``(...)``."""
    pts = np.asarray(landmarks)
    return np.linalg.norm(pts[..., 36, :] - pts[..., 45, :], axis=-1)


def yaw_proxy(landmarks: np.ndarray) -> np.ndarray:
    """A cheap signed yaw indicator in [-1, 1] from 2D points alone.

    Compares the nose tip's horizontal distance to the two jaw ends: 0 for a frontal
    face, towards +1 when the nose approaches the image-right jaw end (the face turned
    to the image right), towards -1 for the other side.
    """
    pts = np.asarray(landmarks, dtype=np.float64)
    left = pts[..., 30, 0] - pts[..., 0, 0]
    right = pts[..., 16, 0] - pts[..., 30, 0]
    # profile faces can put the nose beyond a jaw end: clip to the documented range
    return np.clip((left - right) / np.maximum(np.abs(left) + np.abs(right), 1e-6), -1.0, 1.0)


def flip_horizontal(landmarks: np.ndarray, width: float) -> np.ndarray:
    """Landmarks of the horizontally mirrored image of ``width`` pixels, re-ordered with FLIP_PERM.

    facelm's coordinate convention: pixel ``i`` covers ``[i, i + 1)``, so resizing by a
    factor ``k`` maps ``x -> k * x`` and mirroring maps ``x -> width - x``.
    """
    pts = np.array(landmarks, dtype=np.float32, copy=True)
    pts[..., 0] = width - pts[..., 0]
    return pts[..., FLIP_PERM, :]
