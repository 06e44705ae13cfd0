"""The image cache: pixels equal the formula, landmarks scaled, freshness, atomicity, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from facelm.data import cache as cache_mod
from facelm.data.annot import load_annot
from facelm.data.cache import ImageRows, build_cache, cache_is_fresh, ensure_cache, open_cache
from facelm.layout import cache_name
from facelm.errors import FacelmError
from facelm.data.folder import imread_rgb
from facelm.data.preprocess import preprocess_images


def _reference_pixels(path, size: int, g: float) -> np.ndarray:
    """Independent implementation: PIL decode, numpy power (no LUT), INTER_AREA resize."""
    from PIL import Image

    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
    corrected = np.rint(255.0 * np.power(rgb / 255.0, 1.0 / g)).astype(np.uint8)
    return cv2.resize(corrected, (size, size), interpolation=cv2.INTER_AREA)


@pytest.fixture
def aflw_index(aflw_val, tmp_path):
    """An index selecting 8 labelled aflw_val images (keeps the tests fast)."""
    names, _ = load_annot(aflw_val / "annot.pkl")
    index = tmp_path / "aflw.index"
    index.write_text("\n".join(names[5:13]) + "\n")
    return index


@pytest.fixture
def unlabelled(tmp_path):
    folder = tmp_path / "unlabelled"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        cv2.imwrite(str(folder / f"img{i}.jpg"), rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    return folder


def test_cached_pixels_match_reference_formula(aflw_val, aflw_index, tmp_path):
    out = build_cache(aflw_val, tmp_path / "c", gamma=1.6, gamma_mode="fixed", size=96, index=aflw_index, workers=2)
    cache = open_cache(out)
    names = aflw_index.read_text().split()
    assert cache.names == names and cache.size == 96 and cache.source_size == 384
    assert isinstance(cache.images, ImageRows) and cache.images.shape == (8, 96, 96, 3)
    for i, name in enumerate(names):
        ref = _reference_pixels(aflw_val / name, 96, 1.6)
        assert np.abs(cache.images[i].astype(int) - ref).max() <= 1, name
    # inference preprocessing is byte-identical to the cache
    raw = np.stack([imread_rgb(aflw_val / n) for n in names])
    np.testing.assert_array_equal(preprocess_images(raw, 96, 1.6, "fixed"), cache.images[:].transpose(0, 3, 1, 2))


def test_landmarks_are_scaled_to_the_cache_frame(aflw_val, aflw_index, tmp_path):
    cache = open_cache(build_cache(aflw_val, tmp_path / "c", 1.0, "fixed", 128, aflw_index, workers=0, progress=False))
    names, landmarks = load_annot(aflw_val / "annot.pkl")
    rows = [names.index(n) for n in cache.names]
    assert cache.landmarks.dtype == np.float32
    np.testing.assert_allclose(cache.landmarks, landmarks[rows] * 128 / 384, rtol=1e-6)
    meta = json.loads((cache.path / "meta.json").read_text())
    assert meta["gamma"] == 1.0 and meta["gamma_mode"] == "fixed" and meta["size"] == 128
    assert meta["source"] == str(aflw_val.resolve()) and len(meta["input_hash"]) == 64


def test_unlabelled_folder_and_auto_mode(unlabelled, tmp_path):
    out = build_cache(unlabelled, tmp_path / "u", 1.0, "auto", 32, workers=0, progress=False)
    cache = open_cache(out)
    assert cache.landmarks is None and not (out / "landmarks.npy").exists()
    assert cache.names == [f"img{i}.jpg" for i in range(5)] and cache.source_size == 64
    raw = np.stack([imread_rgb(unlabelled / n) for n in cache.names])
    np.testing.assert_array_equal(preprocess_images(raw, 32, 1.0, "auto"), cache.images[:].transpose(0, 3, 1, 2))


def test_changed_gamma_rebuilds_unchanged_does_not(unlabelled, tmp_path, monkeypatch):
    builds = []
    real_build = cache_mod.build_cache
    monkeypatch.setattr(cache_mod, "build_cache", lambda *a, **k: builds.append(a) or real_build(*a, **k))
    root = tmp_path / "cache"
    first = ensure_cache(unlabelled, root, 1.0, "fixed", 32)
    assert first == root / "g1_fixed_s32" and len(builds) == 1
    stamp = (first / "meta.json").stat().st_mtime_ns
    assert ensure_cache(unlabelled, root, 1.0, "fixed", 32) == first and len(builds) == 1
    assert (first / "meta.json").stat().st_mtime_ns == stamp
    second = ensure_cache(unlabelled, root, 1.3, "fixed", 32)
    assert second == root / cache_name(1.3, "fixed", 32) == root / "g1.3_fixed_s32" and len(builds) == 2
    # same folder, different gamma: stale
    assert cache_is_fresh(unlabelled, first, 1.0, "fixed", 32)
    assert not cache_is_fresh(unlabelled, first, 1.3, "fixed", 32)
    # a changed input image makes it stale too
    st = os.stat(unlabelled / "img2.jpg")
    os.utime(unlabelled / "img2.jpg", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert not cache_is_fresh(unlabelled, first, 1.0, "fixed", 32)
    ensure_cache(unlabelled, root, 1.0, "fixed", 32)
    assert len(builds) == 3 and (first / "meta.json").stat().st_mtime_ns != stamp


def test_mixed_source_sizes_name_the_first_odd_file(unlabelled, tmp_path):
    cv2.imwrite(str(unlabelled / "img3.jpg"), np.zeros((50, 64, 3), np.uint8))
    out = tmp_path / "odd"
    with pytest.raises(FacelmError, match=r"img3\.jpg: image is 64x50 but the folder's images are 64x64"):
        build_cache(unlabelled, out, 1.0, "fixed", 32, workers=0, progress=False)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".odd")]


def test_corrupt_image_fails_with_one_line_in_a_worker(unlabelled, tmp_path):
    (unlabelled / "img1.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(FacelmError, match=r"img1\.jpg: not a decodable image"):
        build_cache(unlabelled, tmp_path / "bad", 1.0, "fixed", 32, workers=2, progress=False)


def test_open_cache_refuses_other_folders(tmp_path):
    with pytest.raises(FacelmError, match="not a facelm cache"):
        open_cache(tmp_path)


def test_cli_builds_then_reports_up_to_date(unlabelled, tmp_path):
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "facelm", "cache", str(unlabelled), str(out), "--size", "24", "--gamma", "1.2"]
    first = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert "5 images 24x24" in first.stdout and "MiB on disk" in first.stdout
    second = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert "up to date" in second.stdout
    bad = subprocess.run(cmd[:4] + [str(tmp_path / "missing"), str(out), "--size", "24"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "data folder not found" in bad.stderr


def test_rows_are_read_without_a_map_and_match_numpy(tmp_path):
    """ImageRows returns what np.load would for ints, slices and index arrays (runs of rows in one read),
    survives pickling (a DataLoader worker reopens the file) and refuses a truncated file in one line."""
    import pickle

    images = np.random.default_rng(0).integers(0, 256, (9, 4, 4, 3), dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    rows = ImageRows(tmp_path / "images.npy")
    assert len(rows) == 9 and rows.shape == images.shape
    np.testing.assert_array_equal(rows[3], images[3])
    np.testing.assert_array_equal(rows[2:7], images[2:7])
    picks = np.array([8, 1, 2, 3, 0, 5, 5])
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(rows))[picks], images[picks])
    with pytest.raises(IndexError):
        rows[[9]]
    (tmp_path / "short.npy").write_bytes((tmp_path / "images.npy").read_bytes()[:-10])
    with pytest.raises(FacelmError, match="truncated"):
        ImageRows(tmp_path / "short.npy")[[8]]


def test_freshness_check_reuses_the_names_while_the_labels_are_unchanged(tmp_path, make_labelled_folder, monkeypatch):
    """A fresh cache is recognised without unpickling annot.pkl (8+ KB a face); a new annot.pkl is noticed."""
    import facelm.data.cache as cache_module
    from facelm.data.annot import load_annot, save_annot

    folder = tmp_path / "faces"
    make_labelled_folder(folder, 5)
    out = build_cache(folder, tmp_path / "c", 1.0, "fixed", 16, workers=0, progress=False)
    names, points = load_annot(folder / "annot.pkl")

    def no_unpickling(*_):
        raise AssertionError("annot.pkl was unpickled")

    monkeypatch.setattr(cache_module, "open_folder", no_unpickling)
    assert cache_is_fresh(folder, out, 1.0, "fixed", 16)
    monkeypatch.undo()
    save_annot(folder / "annot.pkl", names, points + 1)
    assert not cache_is_fresh(folder, out, 1.0, "fixed", 16)
