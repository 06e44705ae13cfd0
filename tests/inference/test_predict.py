"""`facelm predict`: crops, a two-face photo, folders in batches, bad input."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
import torch

from facelm.models.checkpoint import save_checkpoint
from facelm.cli import main
from facelm.inference.pytorch.export import export_onnx
from facelm.data.folder import imread_rgb
from facelm.models import count_params, create_model, model_size_mb
from facelm.inference.onnx_predictor import OnnxPredictor
from facelm.inference.landmarker import COORDINATES, Landmarker
from facelm.inference.predict import ImageOptions, predict_paths
from test_detect import two_face_canvas

torch.set_num_threads(1)  # a 2-thread OpenMP pool crawls when other jobs share the 2 cores
cv2.setNumThreads(1)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A small PyTorch model file and its ONNX export (untrained weights: the tests check plumbing)."""
    out = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    model = create_model("pfld_025").eval()
    with torch.no_grad():
        model.head.mlp[-1].weight.normal_(0, 0.002)  # input-dependent outputs (the head starts at zero)
    save_checkpoint(out / "m.pt", model, {"input_size": 64, "gamma": 1.0, "gamma_mode": "fixed",
                                          "size_mb": model_size_mb(model), "params": count_params(model)})
    export_onnx(out / "m.pt", out / "m.onnx")
    return out


def _faces(path):
    return json.loads(path.read_text())["faces"]


def test_crop_is_predicted_directly(aflw_test, models, tmp_path, capsys):
    crop = aflw_test / "image00002.jpg"
    assert main(["predict", str(crop), "--model", str(models / "m.onnx"), "--out", str(tmp_path)]) == 0
    faces = _faces(tmp_path / "image00002.json")
    assert len(faces) == 1 and faces[0]["box"] == [0, 0, 384, 384] and faces[0]["score"] is None
    record = json.loads((tmp_path / "image00002.json").read_text())
    assert record["read_as"] == "crop" and record["coordinates"] == COORDINATES
    assert record["model"].startswith("m@") and len(record["model"]) == len("m@") + 12
    expected = OnnxPredictor(models / "m.onnx").predict(imread_rgb(crop)[None])[0]
    np.testing.assert_allclose(faces[0]["landmarks"], expected, atol=0.0051)  # rounded to 0.01 px
    assert all(round(v, 2) == v for point in faces[0]["landmarks"] for v in point)
    overlay = imread_rgb(tmp_path / "image00002.jpg")  # a JPEG input gets a JPEG overlay
    assert overlay.shape == (384, 384, 3) and not np.array_equal(overlay, imread_rgb(crop))


def test_two_face_photo_finds_both_and_maps_back(aflw_test, models, tmp_path):
    canvas = two_face_canvas(aflw_test)
    photo = tmp_path / "in" / "two_faces.png"
    photo.parent.mkdir()
    cv2.imwrite(str(photo), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    assert main(["predict", str(photo), "--model", str(models / "m.pt"), "--out", str(tmp_path / "out")]) == 0
    faces = _faces(tmp_path / "out" / "two_faces.json")
    assert len(faces) == 2
    centres = sorted(np.mean(f["landmarks"], axis=0)[0] for f in faces)
    assert centres[0] < 424 < 520 < centres[1]  # one face in each pasted crop
    # the same result through the library
    expected = Landmarker(models / "m.onnx")(canvas, color="rgb")
    np.testing.assert_allclose(np.array([f["landmarks"] for f in faces]), [f.landmarks for f in expected], atol=0.006)
    np.testing.assert_allclose(np.array([f["box"] for f in faces]), [f.box for f in expected], atol=0.006)
    assert all(0 <= f["confidence"] <= 1 and set(f["pose_deg"]) == {"yaw", "pitch", "roll"} for f in faces)


def test_folder_runs_in_batches(aflw_test, models, tmp_path):
    folder = tmp_path / "crops"
    folder.mkdir()
    for name in ("image00002.jpg", "image00004.jpg", "image00006.jpg"):
        shutil.copy(aflw_test / name, folder / name)

    class Counting(OnnxPredictor):
        calls: list[int] = []

        def predict(self, images, batch_size=64, hflip_tta=None):
            self.calls.append(len(images))
            return super().predict(images, batch_size, hflip_tta)

    landmarker = Landmarker(models / "m.onnx")
    landmarker.predictor = Counting(models / "m.onnx")
    summary = predict_paths(landmarker, sorted(folder.iterdir()), tmp_path / "out", options=ImageOptions("crops", 2))
    assert summary.errors == [] and summary.with_faces == 3
    assert landmarker.predictor.calls == [2, 1]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        f"image0000{i}.{ext}" for i in (2, 4, 6) for ext in ("jpg", "json")]


def test_bad_images_are_reported_and_the_rest_still_run(aflw_test, models, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(aflw_test / "image00002.jpg", folder / "good.jpg")
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    cv2.imwrite(str(folder / "wall.png"), np.full((300, 500, 3), 120, np.uint8))  # a photo with no face
    status = main(["predict", str(folder), str(tmp_path / "missing.jpg"), "--model", str(models / "m.onnx"),
                   "--out", str(tmp_path / "out")])
    assert status == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 2
    assert any("broken.jpg: not a decodable image" in line for line in err)
    assert any("missing.jpg: no such file or folder" in line for line in err)
    # a photo with no face is a result, not an error: its JSON says so
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.jpg", "good.json", "wall.json", "wall.png"]
    assert _faces(tmp_path / "out" / "wall.json") == []
    assert "predicted 2 images (1 faces in 1, no face in 1) and 0 videos" in captured.out and "2 errors" in captured.out


def test_no_face_exits_0_and_no_overlay_writes_json_only(models, tmp_path, capsys):
    wall = tmp_path / "wall.png"
    cv2.imwrite(str(wall), np.full((300, 500, 3), 120, np.uint8))
    assert main(["predict", str(wall), "--model", str(models / "m.onnx"), "--out", str(tmp_path / "out"), "--no-overlay"]) == 0
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["wall.json"] and _faces(tmp_path / "out" / "wall.json") == []
    assert "no face in 1" in capsys.readouterr().out


def test_outputs_never_clash_and_never_touch_the_inputs(aflw_test, models, tmp_path, capsys):
    """face.jpg + face.png keep their suffixes; two folders' IMG_0001.jpg go to folder-named subfolders;
    --out inside an input folder is refused before any work."""
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        folder.mkdir()
        shutil.copy(aflw_test / "image00002.jpg", folder / "IMG_0001.jpg")
    shutil.copy(aflw_test / "image00004.jpg", a / "face.jpg")
    cv2.imwrite(str(a / "face.png"), cv2.imread(str(aflw_test / "image00006.jpg")))
    out = tmp_path / "out"
    assert main(["predict", str(a), str(b), "--model", str(models / "m.onnx"), "--out", str(out), "--no-overlay"]) == 0
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.json"))
    assert written == ["a/IMG_0001.jpg.json", "b/IMG_0001.jpg.json", "face.jpg.json", "face.png.json"]
    assert json.loads((out / "face.png.json").read_text())["image"] == str(a / "face.png")
    assert "predicted 4 images" in capsys.readouterr().out
    before = sorted(p.name for p in a.iterdir())
    for bad_out in (a, a / "predictions"):
        assert main(["predict", str(a), "--model", str(models / "m.onnx"), "--out", str(bad_out)]) == 2
        assert "inside the input folder" in capsys.readouterr().err
    assert main(["predict", str(a / "face.png"), "--model", str(models / "m.onnx"), "--out", str(a)]) == 2
    assert "would overwrite the input" in capsys.readouterr().err
    assert sorted(p.name for p in a.iterdir()) == before


def test_a_square_photo_is_detected_not_taken_as_a_crop(aflw_test, models, tmp_path):
    """A two-face photo resized to 384x384 is not a challenge crop: both faces are detected."""
    canvas = cv2.resize(two_face_canvas(aflw_test), (384, 384), interpolation=cv2.INTER_AREA)
    photo = tmp_path / "group.png"
    cv2.imwrite(str(photo), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    assert main(["predict", str(photo), "--model", str(models / "m.onnx"), "--out", str(tmp_path / "out"), "--lines"]) == 0
    record = json.loads((tmp_path / "out" / "group.json").read_text())
    assert record["read_as"] == "detected" and len(record["faces"]) == 2


def test_progress_lines_without_a_terminal(aflw_test, models, tmp_path, capsys, monkeypatch):
    import facelm.inference.predict as predict

    monkeypatch.setattr(predict, "PROGRESS_EVERY", 2)
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("image00002.jpg", "image00004.jpg", "image00006.jpg"):
        shutil.copy(aflw_test / name, folder / name)
    assert main(["predict", str(folder), "--crops", "--no-overlay", "--batch-size", "2", "--model", str(models / "m.onnx"),
                 "--out", str(tmp_path / "out")]) == 0
    assert [line for line in capsys.readouterr().err.splitlines() if "images" in line] == [
        "facelm predict: 2/3 images", "facelm predict: 3/3 images"]


def test_forced_modes(aflw_test, models, tmp_path):
    photo = tmp_path / "small.png"
    cv2.imwrite(str(photo), cv2.resize(cv2.imread(str(aflw_test / "image00019.jpg")), (200, 200)))
    assert main(["predict", str(photo), "--crops", "--model", str(models / "m.onnx"), "--out", str(tmp_path / "a")]) == 0
    assert _faces(tmp_path / "a" / "small.json")[0]["box"] == [0, 0, 200, 200]
    # --detect on a 384 crop uses the detector (a box that is not the whole image)
    crop = aflw_test / "image00019.jpg"
    assert main(["predict", str(crop), "--detect", "--model", str(models / "m.onnx"), "--out", str(tmp_path / "b")]) == 0
    faces = _faces(tmp_path / "b" / "image00019.json")
    assert faces and faces[0]["score"] is not None and faces[0]["box"] != [0, 0, 384, 384]


def test_a_model_that_is_not_a_model_exits_2(aflw_test, tmp_path, capsys):
    for name in ("junk.pt", "junk.onnx"):
        (tmp_path / name).write_bytes(b"junk")
        (tmp_path / "junk.json").write_text(json.dumps({"input_size": 64}))
        assert main(["predict", str(aflw_test / "image00002.jpg"), "--model", str(tmp_path / name),
                     "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and name in err
    assert not (tmp_path / "out").exists()


def test_bring_your_own_box(aflw_test, models, tmp_path, capsys):
    """--box is a face box as the detector gives it, predicted like Landmarker(boxes=...); --boxes does it per file name."""
    canvas = two_face_canvas(aflw_test)
    photo = tmp_path / "two_faces.png"
    cv2.imwrite(str(photo), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    box = [90.0, 180.0, 290.0, 380.0]
    assert main(["predict", str(photo), "--box", ",".join(map(str, box)), "--model", str(models / "m.onnx"),
                 "--out", str(tmp_path / "a")]) == 0
    faces = _faces(tmp_path / "a" / "two_faces.json")
    assert len(faces) == 1 and faces[0]["box"] == box and faces[0]["score"] is None
    expected = [f.landmarks for f in Landmarker(models / "m.onnx")(canvas, color="rgb", boxes=np.array([box]))]
    np.testing.assert_allclose(faces[0]["landmarks"], expected[0], atol=0.006)

    boxes_file = tmp_path / "boxes.csv"
    boxes_file.write_text("# name,x0,y0,x1,y1\ntwo_faces.png,90,180,290,380\ntwo_faces.png 570 140 770 340\n")
    other = tmp_path / "other.png"
    cv2.imwrite(str(other), np.zeros((100, 120, 3), np.uint8))
    assert main(["predict", str(photo), str(other), "--boxes", str(boxes_file), "--model", str(models / "m.onnx"),
                 "--out", str(tmp_path / "b")]) == 2
    assert "other.png: no box for other.png in the boxes file" in capsys.readouterr().err
    faces = _faces(tmp_path / "b" / "two_faces.json")
    assert [f["box"] for f in faces] == [box, [570.0, 140.0, 770.0, 340.0]]
    np.testing.assert_allclose(faces[0]["landmarks"], expected[0], atol=0.006)


@pytest.mark.parametrize("text", ["1,2,3", "1,2,0,5", "a,b,c,d"])
def test_a_bad_box_is_one_line(aflw_test, models, tmp_path, capsys, text):
    assert main(["predict", str(aflw_test / "image00002.jpg"), "--box", text, "--model", str(models / "m.onnx"),
                 "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--box" in err
    bad = tmp_path / "boxes.txt"
    bad.write_text(f"x.jpg {text}\n")
    assert main(["predict", str(aflw_test / "image00002.jpg"), "--boxes", str(bad), "--model", str(models / "m.onnx"),
                 "--out", str(tmp_path)]) == 2
    assert f"{bad}:1" in capsys.readouterr().err


def test_missing_inputs_are_reported_before_the_model_loads(tmp_path, capsys):
    (tmp_path / "junk.pt").write_bytes(b"junk")
    assert main(["predict", str(tmp_path / "absent.jpg"), "--model", str(tmp_path / "junk.pt"),
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nothing to predict: " in err and "absent.jpg: no such file" in err
    assert "junk.pt" not in err and not (tmp_path / "out").exists()
