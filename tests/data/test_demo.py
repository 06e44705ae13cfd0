"""Self-made demo data: layout, exact labels, determinism."""

from __future__ import annotations

import cv2
import numpy as np

from facelm.data.annot import load_annot
from facelm.data.demo import make_demo_data
from facelm.data.folder import list_images


def test_layout_counts_and_labels(demo_data):
    for split, n in (("synthetics_train", 48), ("aflw_val", 12), ("aflw_test", 10)):
        assert len(list_images(demo_data / split)) == n
    assert not (demo_data / "aflw_test" / "annot.pkl").exists()
    names, pts = load_annot(demo_data / "aflw_val" / "annot.pkl")
    assert names == list_images(demo_data / "aflw_val") and pts.shape == (12, 68, 2)
    assert (pts > 0).all() and (pts < 384).all()


def test_same_seed_same_data(tmp_path):
    a = make_demo_data(tmp_path / "a", 4, 2, 1, seed=3)
    b = make_demo_data(tmp_path / "b", 4, 2, 1, seed=3)
    c = make_demo_data(tmp_path / "c", 4, 2, 1, seed=4)
    for split in ("synthetics_train", "aflw_val"):
        assert (a / split / "annot.pkl").read_bytes() == (b / split / "annot.pkl").read_bytes()
    assert not np.allclose(load_annot(a / "aflw_val" / "annot.pkl")[1], load_annot(c / "aflw_val" / "annot.pkl")[1])


def test_drawn_features_sit_at_their_labels(demo_data):
    """The eyes are drawn white inside their polygons: the pixel at an eye's centre is bright."""
    import cv2

    names, pts = load_annot(demo_data / "synthetics_train" / "annot.pkl")
    image = cv2.imread(str(demo_data / "synthetics_train" / names[0]))
    iris_or_white = [image[int(c[1]), int(c[0])] for c in (pts[0, 36:42].mean(0), pts[0, 42:48].mean(0))]
    lip = pts[0, 48:60].mean(0)
    assert all(px.sum() != image[2, 2].sum() for px in iris_or_white)
    assert image[int(lip[1]), int(lip[0])].tolist() != image[2, 2].tolist()


def test_release_format_goes_through_prepare(tmp_path):
    from facelm.data.demo import make_release_data
    from facelm.data.prepare import prepare_folder, read_points

    raw = make_release_data(tmp_path / "raw", 3, seed=1, workers=1)
    assert sorted(p.name for p in raw.iterdir()) == [f"00000{i}{s}" for i in range(3) for s in (".png", "_ldmks.txt")]
    assert cv2.imread(str(raw / "000000.png")).shape == (512, 512, 3)
    assert len((raw / "000002_ldmks.txt").read_text().splitlines()) == 70
    assert not np.allclose(read_points(raw / "000000_ldmks.txt"), read_points(raw / "000001_ldmks.txt"))
    assert prepare_folder(raw, tmp_path / "crops", workers=1)["n_faces"] == 3
    names, points = load_annot(tmp_path / "crops" / "annot.pkl")
    assert names == ["000000.jpg", "000001.jpg", "000002.jpg"] and points.shape == (3, 68, 2)
    assert (points > 0).all() and (points < 384).all()
