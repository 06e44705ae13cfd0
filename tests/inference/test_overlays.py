"""Overlays: JPEG for photos (PNG for a PNG), none with --no-overlay, dots and lines sized by the face, not the image."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import cv2
import numpy as np

from facelm.cli import main
from facelm.data.annot import load_annot
from facelm.inference.drawing import draw_faces

cv2.setNumThreads(1)
BIG_PHOTO = "111076519_1.jpg"  # 300w_raw_sample: 2402 x 1824 (4.4 MP), two faces


def test_photo_overlays_are_jpeg_png_for_png_and_none_without_overlay(shared_data, tmp_path, capsys):
    photo = shared_data("300w_raw_sample") / BIG_PHOTO
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(photo, folder / "big.jpg")
    cv2.imwrite(str(folder / "same.png"), cv2.imread(str(photo)))
    assert main(["predict", str(folder), "--out", str(tmp_path / "out")]) == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["big.jpg", "big.json", "same.json", "same.png"]
    jpeg, png = (tmp_path / "out" / "big.jpg"), (tmp_path / "out" / "same.png")
    assert jpeg.read_bytes()[:2] == b"\xff\xd8" and png.read_bytes()[:4] == b"\x89PNG"
    overlay = cv2.imread(str(jpeg))
    assert overlay.shape == cv2.imread(str(photo)).shape  # full resolution, a fraction of the PNG's bytes
    print(f"overlay of a {overlay.shape[1]}x{overlay.shape[0]} photo: JPEG {jpeg.stat().st_size / 1e6:.2f} MB, "
          f"PNG {png.stat().st_size / 1e6:.2f} MB")
    assert jpeg.stat().st_size < 0.4 * png.stat().st_size
    assert main(["predict", str(folder), "--out", str(tmp_path / "bare"), "--no-overlay"]) == 0
    assert sorted(p.name for p in (tmp_path / "bare").iterdir()) == ["big.json", "same.json"]


def _dot_area(face, image: np.ndarray, index: int = 30) -> int:
    """Pixels the dot of point ``index`` (30: the nose tip, away from other points) changes, in a window of
    a tenth of the face around it."""
    half = int(0.05 * np.ptp(face.landmarks, axis=0).max())
    x, y = np.floor(face.landmarks[index]).astype(int)
    window = (slice(y - half, y + half + 1), slice(x - half, x + half + 1))
    return int((draw_faces(image, [face])[window] != image[window]).any(2).sum())


def test_dot_and_line_sizes_follow_the_face_not_the_image(aflw_val):
    names, labels = load_annot(aflw_val / "annot.pkl")
    label = np.asarray(labels[0], np.float32)  # a face about 200 px across in its 384 crop
    face_at = lambda scale, offset: SimpleNamespace(  # noqa: E731
        landmarks=(label - label.mean(0)) * scale + offset, box=None)
    small_image, big_image = np.zeros((500, 500, 3), np.uint8), np.zeros((4000, 4000, 3), np.uint8)
    face = face_at(1.0, 250)
    window = (slice(100, 400), slice(100, 400))
    # the same face draws the same in a small and in a large image (an image-sized dot would be 6x larger)
    np.testing.assert_array_equal(draw_faces(small_image, [face], lines=True)[window],
                                  draw_faces(big_image, [face], lines=True)[window])
    # a face 4 times larger in the same image gets dots 3 to 4 times wider (radius rounded to whole pixels)
    small, big = _dot_area(face, big_image), _dot_area(face_at(4.0, 2000), big_image)
    print(f"dot area: {small} px for a {np.ptp(face.landmarks, axis=0).round()} px face, {big} px at 4 times its size")
    assert 4 * small < big < 20 * small  # an image-sized dot would have the same area in both
