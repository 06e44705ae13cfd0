"""The 68-point Basel Face Model (as modified by 3DDFA): decode parameters, fit them to 2D labels.

A face is ``X = u + W_shp @ alpha_shp + W_exp @ alpha_exp`` (204 numbers, x, y, z interleaved
per point), seen through a scaled orthographic camera: ``x_2d = s * R[:2] @ X + t``. The bases
and the 300W-LP statistics of the 62 parameters (12 camera numbers, 40 identity, 10 expression)
come from ``../shared/models/3ddfa_v2/`` (``bfm68_bases.npz``, ``param_mean_std_62d.npz``).

:func:`fit` solves pose, identity and expression for any set of 68 labels by alternating least
squares: an affine camera given the shape (then its nearest scaled rotation), and the 50
coefficients given the camera, ridge-regularised towards the 300W-LP mean in units of its
standard deviation. It gives every labelled face 3D points, a head pose and a 3D-convention jaw,
without any teacher. Everything is batched numpy over faces.

Frames: the BFM's own frame has y pointing up; :class:`BFM68` works in image coordinates (x right,
y down) and returns depth ``z`` with larger values nearer the camera.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facelm.atomic import atomic_open
from facelm.errors import FacelmError
from facelm.data.head3d import scaled_orthographic

BASES_FILE = "bfm68_bases.npz"
STATS_FILE = "param_mean_std_62d.npz"
N_SHAPE, N_EXPR = 40, 10
#: the bases' terms, recorded with every label or view derived from them
TERMS = "Basel Face Model (68-point bases): non-commercial research use"


@dataclass
class Fit:
    """:func:`BFM68.fit` results for N faces (image frame, y down)."""

    rotation: np.ndarray  # (N, 3, 3), rows: image x, image y (down), towards the camera
    scale: np.ndarray  # (N,)
    translation: np.ndarray  # (N, 2)
    coeffs: np.ndarray  # (N, 50) identity then expression
    points3d: np.ndarray  # (N, 68, 3) x, y in pixels, z in pixels (larger = nearer)
    residual: np.ndarray  # (N,) mean 2D distance of the fitted points to the labels, pixels

    @property
    def yaw_deg(self) -> np.ndarray:
        """Head yaw in degrees, positive when the face turns towards the image right."""
        return np.degrees(np.arcsin(np.clip(self.rotation[:, 0, 2], -1.0, 1.0)))


def _load_npz(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise FacelmError("3D face model file not found (see ../shared/models/3ddfa_v2/README.md)", path)
    try:
        with np.load(path, allow_pickle=False) as data:
            out = {k: np.asarray(data[k], np.float64) for k in keys}
    except (KeyError, ValueError, OSError) as err:
        raise FacelmError(f"not a 3D face model file ({type(err).__name__}: {err})", path) from None
    return out


class BFM68:
    """The bases and parameter statistics; ``decode`` and ``fit`` in the image frame."""

    def __init__(self, folder: str | os.PathLike):
        folder = Path(folder)
        bases = _load_npz(folder / BASES_FILE, ("u", "w_shp", "w_exp"))
        stats = _load_npz(folder / STATS_FILE, ("mean", "std"))
        self.folder = folder
        self.mean_shape = bases["u"]  # (204,)
        self.basis = np.concatenate([bases["w_shp"], bases["w_exp"]], axis=1)  # (204, 50)
        self.param_mean, self.param_std = stats["mean"], stats["std"]
        if self.mean_shape.shape != (204,) or self.basis.shape != (204, N_SHAPE + N_EXPR) or self.param_mean.shape != (62,):
            raise FacelmError("3D face model has unexpected shapes", folder)

    def shape(self, coeffs: np.ndarray) -> np.ndarray:
        """(N, 50) coefficients -> (N, 68, 3) points in the BFM frame (y up)."""
        flat = self.mean_shape + coeffs @ self.basis.T  # (N, 204)
        return flat.reshape(len(coeffs), 68, 3)

    def decode(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """De-normalised 62-vectors (N, 62) -> BFM-frame camera points (N, 68, 3) and ``R`` (N, 3, 3)."""
        camera = params[:, :12].reshape(-1, 3, 4)
        points = self.shape(params[:, 12:])
        out = np.einsum("nij,nkj->nki", camera[:, :, :3], points) + camera[:, None, :, 3]
        return out, camera[:, :, :3]

    def fit(self, landmarks: np.ndarray, iterations: int = 12, ridge: float = 1.0) -> Fit:
        """Fit pose, identity and expression to (N, 68, 2) pixel labels (image frame, y down)."""
        target = np.asarray(landmarks, np.float64).reshape(-1, 68, 2) * np.array([1.0, -1.0])  # y up, like the BFM
        n = len(target)
        prior_mean = np.broadcast_to(self.param_mean[12:], (n, 50))
        prior_std = self.param_std[12:]
        coeffs = prior_mean.copy()
        for _ in range(iterations):
            points = self.shape(coeffs)
            rows, scale, shift = scaled_orthographic(points, target)
            coeffs = self._solve_coeffs(target, rows, scale, shift, prior_mean, prior_std, ridge)
        points = self.shape(coeffs)
        rows, scale, shift = scaled_orthographic(points, target)
        rotation = np.concatenate([rows, np.cross(rows[:, 0], rows[:, 1])[:, None]], axis=1)
        camera_pts = scale[:, None, None] * np.einsum("nij,nkj->nki", rotation, points)
        camera_pts[..., :2] += shift[:, None]
        flip = np.array([1.0, -1.0, 1.0])
        points3d = camera_pts * flip
        residual = np.linalg.norm(points3d[..., :2] - target * np.array([1.0, -1.0]), axis=-1).mean(axis=1)
        image_rotation = flip[None, :, None] * rotation * flip[None, None, :]
        return Fit(image_rotation, scale, shift * np.array([1.0, -1.0]), coeffs, points3d, residual)

    def _solve_coeffs(self, target, rows, scale, shift, prior_mean, prior_std, ridge) -> np.ndarray:
        """Ridge least squares for the 50 coefficients given each face's camera."""
        basis = self.basis.reshape(68, 3, 50)
        # projected basis: (N, 68, 2, 50) = s * rows @ basis
        proj = scale[:, None, None, None] * np.einsum("nij,kjc->nkic", rows, basis)
        mean_proj = scale[:, None, None] * np.einsum("nij,kj->nki", rows, self.mean_shape.reshape(68, 3))
        rhs = (target - shift[:, None] - mean_proj).reshape(len(target), 136)
        design = proj.reshape(len(target), 136, 50)
        # the data term is in pixels; the prior in standard deviations, weighted so ridge=1 is
        # one pixel of error per standard deviation of a coefficient
        weight = ridge / prior_std**2
        lhs = np.einsum("nkc,nkd->ncd", design, design) + np.diag(weight)[None]
        b = np.einsum("nkc,nk->nc", design, rhs) + weight * prior_mean
        return np.linalg.solve(lhs, b[..., None])[..., 0]


def write_mean_face(folder: str | os.PathLike, out: str | os.PathLike) -> np.ndarray:
    """The BFM's 68-point mean shape -> ``out`` (``.npy``, (68, 3) float32 millimetres in image axes:
    x right, y down, z towards the camera), the face of :mod:`facelm.data.head3d`; returns it.

        python -c "from facelm.models.bfm import write_mean_face; write_mean_face('../shared/models/3ddfa_v2', 'src/facelm/weights/mean_face_68.npy')"
    """
    face = BFM68(folder).mean_shape.reshape(68, 3) * np.array([1.0, -1.0, 1.0]) / 1000.0  # micrometres, y up
    face = (face - face.mean(axis=0)).astype(np.float32)
    with atomic_open(out, "wb") as handle:
        np.save(handle, face)
    return face
