"""Batch augmentation, both executors (torch tensors, OpenCV on uint8): points follow the pixels, flips keep
left/right meaning, draws are seeded and the same for both."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facelm.data.annot import load_annot
from facelm.data.batch_augment import box_blur, build_batch_augment
from facelm.data.batch_draws import homography_from_points
from facelm.errors import FacelmError
from facelm.landmarks68 import flip_horizontal

NOTHING = {"hflip_p": 0, "affine_p": 0, "perspective_p": 0, "color_p": 0, "blur_p": 0, "grayscale_p": 0,
           "jpeg_p": 0, "occlusion_p": 0}


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def dots_batch(n: int, size: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Images with a red, green and blue 3x3 dot under points 0, 30 and 45 (other points at the centre)."""
    rng = np.random.default_rng(0)
    points = np.full((n, 68, 2), size / 2, np.float32)
    images = np.zeros((n, 3, size, size), np.uint8)
    marked = rng.integers(size // 4, 3 * size // 4, (n, 3, 2)) + 0.5
    points[:, [0, 30, 45]] = marked
    for i in range(n):
        for channel, (x, y) in enumerate(marked[i]):
            images[i, channel, int(y) - 1 : int(y) + 2, int(x) - 1 : int(x) + 2] = 255
    return torch.from_numpy(images), torch.from_numpy(points / size), marked


EXECUTORS = pytest.mark.parametrize("executor", ["torch", "opencv"])


@EXECUTORS
def test_nothing_enabled_is_the_identity(executor):
    images, points, _ = dots_batch(4, 64)
    out_images, out_points = build_batch_augment(NOTHING, 64, executor)(images, points, gen())
    assert out_images.dtype == (torch.float32 if executor == "torch" else torch.uint8)
    assert torch.allclose(out_images.float(), images.float(), atol=0.01)
    assert torch.allclose(out_points, points, atol=1e-6)


@EXECUTORS
def test_flip_mirrors_pixels_exactly_and_keeps_point_meaning(train_300w, executor):
    names, pts = load_annot(train_300w / "annot.pkl")
    frontal = pts[np.abs(pts[:, 30, 0] - (pts[:, 0, 0] + pts[:, 16, 0]) / 2) < 15][:8]
    images = torch.randint(0, 256, (len(frontal), 3, 96, 96), dtype=torch.uint8)
    augment = build_batch_augment({**NOTHING, "hflip_p": 1.0}, 96, executor)
    out_images, out_points = augment(images, torch.from_numpy(frontal / 384), gen())
    assert torch.allclose(out_images.float(), images.flip(-1).float(), atol=0.01)
    assert np.allclose(out_points.numpy() * 384, flip_horizontal(frontal, 384), atol=1e-3)
    flipped = out_points.numpy()
    assert (flipped[:, 36:42, 0].mean(1) < flipped[:, 42:48, 0].mean(1)).all()  # image-left eye stays 36-41
    assert (flipped[:, 0, 0] < flipped[:, 16, 0]).all()


@EXECUTORS
def test_points_follow_the_pixels_under_geometric_transforms(executor):
    """After flip / affine / perspective each coloured dot sits where its point went."""
    size, n = 128, 24
    cfg = {**NOTHING, "hflip_p": 0.5, "affine_p": 1.0, "rotate_deg": 30, "scale": 0.2, "shift": 0.05,
           "perspective_p": 1.0, "perspective_scale": 0.06}
    images, points, _ = dots_batch(n, size)
    out_images, out_points = build_batch_augment(cfg, size, executor)(images, points, gen(3))
    moved = 0
    for i in range(n):
        # a flip renumbers points (0 <-> 16, 45 <-> 36), so each dot must sit on one of these ids
        candidates = out_points[i, [0, 16, 30, 36, 45]].numpy() * size
        for channel in range(3):
            ys, xs = np.nonzero(out_images[i, channel].numpy() > 100)
            if len(xs) == 0:
                continue  # pushed outside the crop
            centre = np.array([xs.mean() + 0.5, ys.mean() + 0.5])
            assert np.linalg.norm(candidates - centre, axis=1).min() < 1.0, (i, channel, centre)
            moved += np.linalg.norm(points[i, [0, 30, 45]].numpy() * size - centre, axis=1).min() > 2
    assert moved > n  # the transforms really moved most dots


@EXECUTORS
def test_each_sample_gets_its_own_draw_and_the_generator_fixes_it(executor):
    images = torch.full((6, 3, 64, 64), 128, dtype=torch.uint8)
    points = torch.full((6, 68, 2), 0.5)
    augment = build_batch_augment({}, 64, executor)
    a_images, a_points = augment(images, points, gen(7))
    b_images, b_points = augment(images, points, gen(7))
    assert torch.equal(a_images, b_images) and torch.equal(a_points, b_points)
    assert len({tuple(p) for p in a_images.float().mean((2, 3)).round(decimals=3).tolist()}) == 6
    c_images, _ = augment(images, points, gen(8))
    assert not torch.equal(a_images, c_images)


@EXECUTORS
def test_photometric_transforms(executor):
    rng = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (8, 3, 64, 64), generator=rng, dtype=torch.uint8)
    points = torch.rand(8, 68, 2)

    def run(cfg, pixels, landmarks):
        out, moved = build_batch_augment({**NOTHING, **cfg}, 64, executor)(pixels, landmarks, gen())
        return out.float(), moved

    gray, _ = run({"grayscale_p": 1.0}, images, points)
    assert torch.allclose(gray[:, 0], gray[:, 1], atol=1e-3) and torch.allclose(gray[:, 1], gray[:, 2], atol=1e-3)
    occluded, out_points = run({"occlusion_p": 1.0, "occlusion_max_frac": 0.3}, images, points)
    holes = (occluded == 0).all(1) & (images != 0).any(1)
    assert torch.equal(out_points, points)
    for hole in holes:
        ys, xs = torch.nonzero(hole, as_tuple=True)
        h, w = int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)
        assert 6 <= h <= 19 and 6 <= w <= 19 and len(ys) == h * w  # one rectangle of 10-30 % of the side
    low, _ = run({"jpeg_p": 1.0, "jpeg_quality_min": 10}, images, points)
    smooth = torch.full((1, 3, 64, 64), 90.0)
    same, _ = run({"jpeg_p": 1.0}, smooth, points[:1])
    assert torch.allclose(same, smooth, atol=1.0)  # a flat image survives JPEG
    assert (low - images.float()).abs().mean() > 5  # noise does not
    assert abs(float(low.mean() - images.float().mean())) < 3


def test_both_executors_apply_the_same_draws(train_300w):
    """Same generator -> the same points exactly, and pixels that differ only by rounding and interpolation."""
    from facelm.data.folder import imread_rgb
    from facelm.data.preprocess import preprocess_uint8

    names, pts = load_annot(train_300w / "annot.pkl")
    images = np.stack([preprocess_uint8(imread_rgb(train_300w / name)[None], 96)[0] for name in names[:16]])
    batch = torch.from_numpy(images).permute(0, 3, 1, 2)
    points = torch.from_numpy(pts[:16] / 384)
    cfg = {"jpeg_p": 0.0}  # real JPEG (OpenCV) and its simulation (torch) differ by design; checked above
    by_torch, torch_points = build_batch_augment(cfg, 96, "torch")(batch, points, gen(11))
    by_opencv, opencv_points = build_batch_augment(cfg, 96, "opencv")(batch, points, gen(11))
    assert torch.equal(torch_points, opencv_points)
    difference = (by_torch - by_opencv.float()).abs()
    assert difference.mean() < 2.0 and difference.median() <= 1.0, (difference.mean(), difference.median())


def test_ddp_shares_split_one_global_draw():
    """Two processes' halves of a global batch get exactly the single process's draws for those samples."""
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=gen(1))
    points = torch.rand(8, 68, 2, generator=gen(2))
    augment = build_batch_augment({}, 32)
    whole, whole_points = augment(images, points, gen(5))
    for rank in (0, 1):
        part, part_points = augment(images[rank * 4 : rank * 4 + 4], points[rank * 4 : rank * 4 + 4], gen(5), rank, 2)
        assert torch.equal(part, whole[rank * 4 : rank * 4 + 4]) and torch.equal(part_points, whole_points[rank * 4 : rank * 4 + 4])


def test_unknown_executor_is_one_clear_error():
    with pytest.raises(FacelmError, match="unknown batch-augment executor 'cuda'"):
        build_batch_augment({}, 32, "cuda")


def test_box_blur_matches_opencv():
    import cv2

    image = np.random.default_rng(0).integers(0, 256, (20, 24, 3)).astype(np.float32)
    for k in (3, 5):
        ours = box_blur(torch.from_numpy(image).permute(2, 0, 1)[None], k)[0].permute(1, 2, 0).numpy()
        assert np.allclose(ours, cv2.blur(image, (k, k)), atol=1e-2)


def test_homography_maps_the_four_points():
    src = torch.tensor([[[-0.9, -1.0], [1.0, -0.8], [0.95, 1.0], [-1.0, 0.9]]])
    dst = torch.tensor([[[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]]])
    h = homography_from_points(src, dst)
    mapped = torch.cat([src, torch.ones(1, 4, 1)], -1) @ h.transpose(1, 2)
    assert torch.allclose(mapped[..., :2] / mapped[..., 2:], dst, atol=1e-5)


def test_bad_shapes():
    augment = build_batch_augment({}, 32)
    with pytest.raises(FacelmError, match="expects images"):
        augment(torch.zeros(2, 3, 16, 16), torch.zeros(2, 68, 2), gen())
    with pytest.raises(FacelmError, match="expects landmarks"):
        augment(torch.zeros(2, 3, 32, 32), torch.zeros(2, 5, 2), gen())
