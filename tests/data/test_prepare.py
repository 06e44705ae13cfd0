"""prepare: raw FaceSynthetics / 300-W folders -> challenge crops by a similarity transform."""

from __future__ import annotations

import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from facelm.data.annot import load_annot
from facelm.errors import FacelmError
from facelm.landmarks68 import box_centre, box_size
from facelm.data.prepare import prepare_folder, read_points


def _fit_similarity(src, dst):
    """Least-squares similarity src -> dst (independent of prepare's own maths)."""
    matrix, _ = cv2.estimateAffinePartial2D(src.astype(np.float32), dst.astype(np.float32), method=cv2.LMEDS)
    return matrix


def test_facesynthetics_sample_becomes_100_exact_crops(facesynthetics_100, tmp_path):
    n = prepare_folder(facesynthetics_100, tmp_path / "out", workers=2)["n_faces"]
    names, pts = load_annot(tmp_path / "out" / "annot.pkl")
    assert n == 100 and len(names) == 100 and names[0].endswith(".jpg")
    for name, out_pts in zip(names[:100], pts):
        src = np.loadtxt(facesynthetics_100 / name.replace(".jpg", "_ldmks.txt"))[:68]
        matrix = _fit_similarity(src, out_pts)
        assert abs(matrix[0, 1]) < 1e-4 and abs(matrix[0, 0] - matrix[1, 1]) < 1e-4  # no rotation, isotropic
        residual = np.linalg.norm(src @ matrix[:, :2].T + matrix[:, 2] - out_pts, axis=1).max()
        assert residual < 0.5
    assert abs(box_size(pts).mean() / 384 - 0.51) < 0.01
    assert np.allclose(box_centre(pts).mean(0) / 384, [0.5, 0.58], atol=0.01)


def test_crop_pixels_follow_the_transform(facesynthetics_100, tmp_path):
    prepare_folder(facesynthetics_100, tmp_path / "out", workers=1, limit=3)
    names, pts = load_annot(tmp_path / "out" / "annot.pkl")
    src_img = cv2.imread(str(facesynthetics_100 / names[0].replace(".jpg", ".png"))).astype(np.float32)
    crop = cv2.imread(str(tmp_path / "out" / names[0])).astype(np.float32)
    src = np.loadtxt(facesynthetics_100 / names[0].replace(".jpg", "_ldmks.txt"))[:68]
    matrix = _fit_similarity(src, pts[0])
    inverse = cv2.invertAffineTransform(matrix)
    # compare the colour at the crop's pixel centres with the source at the mapped points
    ys, xs = np.mgrid[100:300:20, 100:300:20]
    centres = np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5], 1)
    mapped = centres @ inverse[:, :2].T + inverse[:, 2] - 0.5
    sampled = np.array([cv2.getRectSubPix(src_img, (1, 1), tuple(p))[0, 0] for p in mapped])
    assert np.median(np.abs(sampled - crop[ys.ravel(), xs.ravel()])) < 12


def test_300w_points_with_and_without_header(raw_300w_sample, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(raw_300w_sample, raw)
    first = sorted(raw.glob("*.pts"))[0]
    plain = read_points(first)
    lines = first.read_text().split("\n")
    first.write_text("version: 1\nn_points:  68\n{\n" + "\n".join(l for l in lines if l.strip()) + "\n}\n")
    assert np.allclose(read_points(first), plain)
    assert np.allclose(plain + 0.5, np.loadtxt(raw_300w_sample / first.name))  # 1-based -> continuous
    assert prepare_folder(raw, tmp_path / "out", workers=1)["n_faces"] == 20


@pytest.mark.parametrize("breaker, message", [
    (lambda d: (d / "000000_ldmks.txt").write_text("1 2\n3 4\n"), "expected 70 points"),
    (lambda d: (d / "000000_ldmks.txt").write_text("a b\n" * 70), "not two numbers"),
    (lambda d: (d / "000000.png").unlink(), "without image"),
    (lambda d: (d / "000000.png").write_bytes(b"junk"), "not a decodable image"),
])
def test_bad_input_is_one_line_naming_the_file(facesynthetics_100, tmp_path, breaker, message):
    raw = tmp_path / "raw"
    raw.mkdir()
    for stem in ("000000", "000001"):
        shutil.copy(facesynthetics_100 / f"{stem}.png", raw)
        shutil.copy(facesynthetics_100 / f"{stem}_ldmks.txt", raw)
    breaker(raw)
    with pytest.raises(FacelmError, match=message) as err:
        prepare_folder(raw, tmp_path / "out", workers=1)
    assert "000000" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "out" / "annot.pkl").exists()
    result = subprocess.run([sys.executable, "-m", "facelm", "prepare", str(raw), str(tmp_path / "o2")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_empty_folder(tmp_path):
    with pytest.raises(FacelmError, match="no FaceSynthetics"):
        prepare_folder(tmp_path, tmp_path / "out")
