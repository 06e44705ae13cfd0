"""A point distribution model (Cootes et al.'s ASM shape model) of 68-point faces.

Training shapes (normalised coordinates, ``u = x / S``) are aligned to their mean by
generalised Procrustes analysis (similarity: scale, rotation, translation), and a PCA of the
aligned shapes gives the modes of non-rigid variation. A face is then

    x = pose( mean + coeffs @ components )

with ``pose`` a similarity kept separately as ``(a, b, tx, ty)``: the point ``y`` of the model
frame goes to ``[[a, -b], [b, a]] @ y + t`` (``a = s cos r``, ``b = s sin r``). This linear
parameterisation keeps pose regression and its inverse free of angle wrap-around.

Everything lives in buffers with a fixed number of modes, so a model holding a
``ShapeModel`` saves and reloads it with its weights; ``fit`` fills them from data.
All methods are batched torch operations (differentiable, usable inside losses).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from facelm.landmarks68 import CHALLENGE_SIZE, mean_shape

NUM_POINTS = 68
PROCRUSTES_ITERATIONS = 10


def _centre_and_unit(shape: np.ndarray) -> np.ndarray:
    """Centre a (68, 2) shape on its centroid and scale it to unit Frobenius norm."""
    centred = shape - shape.mean(axis=0)
    return centred / np.linalg.norm(centred)


def _align_to(shapes: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares similarity alignment of ``shapes`` (B, 68, 2) to a centred ``reference``.

    Returns the aligned shapes (in the reference frame) and the pose ``(B, 4)`` that maps the
    reference frame back onto the input shapes (the inverse of the alignment).
    """
    centroid = shapes.mean(dim=1, keepdim=True)
    x = shapes - centroid
    norm2 = (x**2).sum(dim=(1, 2)).clamp_min(1e-12)
    # similarity [[a, -b], [b, a]] minimising |R x - ref|^2 (closed form for 2D)
    a = (x * reference).sum(dim=(1, 2)) / norm2
    b = (x[..., 0] * reference[..., 1] - x[..., 1] * reference[..., 0]).sum(dim=1) / norm2
    aligned = torch.stack([a[:, None] * x[..., 0] - b[:, None] * x[..., 1],
                           b[:, None] * x[..., 0] + a[:, None] * x[..., 1]], dim=-1)
    det = (a**2 + b**2).clamp_min(1e-12)
    pose = torch.stack([a / det, -b / det, centroid[:, 0, 0], centroid[:, 0, 1]], dim=1)
    return aligned, pose


def apply_pose(model_points: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
    """Model-frame points (B, K, 2) -> image frame with the similarity ``pose`` (B, 4)."""
    a, b, tx, ty = (pose[:, i, None] for i in range(4))
    x, y = model_points[..., 0], model_points[..., 1]
    return torch.stack([a * x - b * y + tx, b * x + a * y + ty], dim=-1)


class ShapeModel(nn.Module):
    """PCA shape model with ``n_modes`` modes (buffers ``mean``, ``components``, ``eigenvalues``).

    Before ``fit`` it is the generic mean shape with no modes (zero components): every shape
    projects to zero coefficients.
    """

    def __init__(self, n_modes: int = 16):
        super().__init__()
        self.n_modes = int(n_modes)
        generic = mean_shape(CHALLENGE_SIZE) / CHALLENGE_SIZE
        self.register_buffer("mean", torch.from_numpy(_centre_and_unit(generic)).float())
        self.register_buffer("components", torch.zeros(self.n_modes, NUM_POINTS * 2))
        self.register_buffer("eigenvalues", torch.zeros(self.n_modes))
        self.register_buffer("explained", torch.zeros(self.n_modes))  # cumulative variance ratio
        # mean (a, b, tx, ty) of the data; before fit, the pose of the generic mean shape
        centroid = generic.mean(axis=0)
        generic_pose = [np.linalg.norm(generic - centroid), 0.0, centroid[0], centroid[1]]
        self.register_buffer("mean_pose", torch.tensor(generic_pose, dtype=torch.float32))

    @staticmethod
    def modes_for_variance(landmarks: np.ndarray, variance: float) -> int:
        """How many modes explain ``variance`` (0..1) of the aligned shapes' variance."""
        ratios = ShapeModel._pca(landmarks)[2]
        return int(np.searchsorted(np.cumsum(ratios), variance) + 1)

    @classmethod
    def from_landmarks(cls, landmarks: np.ndarray, variance: float = 0.97) -> "ShapeModel":
        """A model with as many modes as explain ``variance`` of the data, fitted to it."""
        model = cls(cls.modes_for_variance(landmarks, variance))
        model.fit(landmarks)
        return model

    @staticmethod
    def _pca(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Generalised Procrustes + PCA -> (mean, components, explained ratios, eigenvalues, poses)."""
        shapes = torch.from_numpy(np.asarray(landmarks, np.float64).reshape(-1, NUM_POINTS, 2))
        reference = torch.from_numpy(_centre_and_unit(shapes.mean(dim=0).numpy()))
        for _ in range(PROCRUSTES_ITERATIONS):
            aligned, poses = _align_to(shapes, reference)
            reference = torch.from_numpy(_centre_and_unit(aligned.mean(dim=0).numpy()))
        aligned, poses = _align_to(shapes, reference)
        flat = (aligned - reference).reshape(len(shapes), -1).numpy()
        _, sing, vt = np.linalg.svd(flat, full_matrices=False)
        eig = sing**2 / max(len(shapes) - 1, 1)
        ratios = eig / max(eig.sum(), 1e-18)
        return reference.numpy(), vt, ratios, eig, poses.numpy()

    def fit(self, landmarks: np.ndarray) -> "ShapeModel":
        """Fit to normalised training landmarks (N, 68, 2); keeps the first ``n_modes`` modes."""
        mean, vt, ratios, eig, poses = self._pca(landmarks)
        k = min(self.n_modes, len(eig))
        components = np.zeros((self.n_modes, NUM_POINTS * 2))
        eigenvalues = np.zeros(self.n_modes)
        components[:k], eigenvalues[:k] = vt[:k], eig[:k]
        explained = np.cumsum(np.pad(ratios[:k], (0, self.n_modes - k)))
        for buffer, value in ((self.mean, mean), (self.components, components), (self.eigenvalues, eigenvalues),
                              (self.explained, explained), (self.mean_pose, poses.mean(axis=0))):
            buffer.copy_(torch.from_numpy(np.asarray(value)).to(buffer))
        return self

    def encode(self, landmarks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 68, 2) normalised shapes -> coefficients (B, n_modes) and pose (B, 4)."""
        aligned, pose = _align_to(landmarks, self.mean)
        coeffs = (aligned - self.mean).reshape(len(landmarks), -1) @ self.components.T
        return coeffs, pose

    def project(self, landmarks: torch.Tensor) -> torch.Tensor:
        """(B, 68, 2) -> shape coefficients (B, n_modes), pose removed."""
        return self.encode(landmarks)[0]

    def model_shape(self, coeffs: torch.Tensor) -> torch.Tensor:
        """Coefficients (B, n_modes) -> shapes in the model frame (B, 68, 2)."""
        return self.mean + (coeffs @ self.components).reshape(-1, NUM_POINTS, 2)

    def reconstruct(self, coeffs: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
        """Coefficients (B, n_modes) and pose (B, 4) -> normalised landmarks (B, 68, 2)."""
        return apply_pose(self.model_shape(coeffs), pose)

    def clip(self, coeffs: torch.Tensor, n_std: float = 3.0) -> torch.Tensor:
        """Limit each coefficient to ``+-n_std * sqrt(eigenvalue)`` (plausible shapes only)."""
        bound = n_std * self.eigenvalues.clamp_min(0).sqrt()
        return torch.maximum(torch.minimum(coeffs, bound), -bound)

    def regularise(self, landmarks: torch.Tensor, n_modes: int | None = None, n_std: float = 3.0) -> torch.Tensor:
        """The closest plausible shape: project, keep the first ``n_modes`` modes, clip, reconstruct.

        These are ASMNet's "ASM points" (the ground truth pulled onto the main modes).
        """
        coeffs, pose = self.encode(landmarks)
        coeffs = self.clip(coeffs, n_std)
        if n_modes is not None:
            coeffs = coeffs * (torch.arange(self.n_modes, device=coeffs.device) < n_modes)
        return self.reconstruct(coeffs, pose)
