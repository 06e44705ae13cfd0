"""Shipped pretrained models: `facelm ship` writes a self-contained ONNX + card, the registry lists it,
it is the default of `facelm predict` / `Landmarker()`, and -- THE SHIPPED-MODEL TEST -- every model in
src/facelm/weights reproduces its card's aflw_val NME (one case per shipped model)."""

from __future__ import annotations

import json

import cv2
import pytest

import facelm.inference.shipped as shipped
from facelm.challenge.evaluate import evaluate
from facelm.cli import main
from facelm.inference.onnx_predictor import OnnxPredictor, read_onnx_card
from facelm.inference.model_list import pretrained_rows
from facelm.inference.shipped import WEIGHTS_DIR, shipped_models
from test_predict import models  # noqa: F401 (fixture)

cv2.setNumThreads(1)
TERMS = "test model: 300-W (non-commercial research only)"


@pytest.fixture(scope="module")
def weights_dir(models, tmp_path_factory, shared_data):  # noqa: F811
    """A weights folder holding one shipped model, "fast" (the untrained plumbing model of test_predict)."""
    out = tmp_path_factory.mktemp("weights")
    assert main(["ship", str(models / "m.pt"), "--name", "fast", "--val", str(shared_data("aflw_val")),
                 "--terms", TERMS, "--out", str(out), "--runs", "5"]) == 0
    return out


def test_ship_writes_a_self_contained_model_and_its_card(weights_dir):
    assert sorted(p.name for p in weights_dir.iterdir()) == ["fast.md", "fast.onnx"]
    card = read_onnx_card(weights_dir / "fast.onnx")
    assert card["name"] == "fast" and card["terms"] == TERMS and card["val_folder"] == "aflw_val"
    assert card["input_size"] == 64 and card["normalisation"].startswith("inside the graph")
    assert card["crop_framing"]["landmark_box_centre"] == [0.5, 0.58] and card["ort_ms_per_face_1_thread"] > 0
    assert card["size_mb"] == pytest.approx((weights_dir / "fast.onnx").stat().st_size / 2**20, rel=1e-3)
    text = (weights_dir / "fast.md").read_text()
    assert text.startswith("# Shipped model `fast`") and TERMS in text and f"**{card['val_nme_384']:.3f}**" in text


def test_ship_with_flip_tta_makes_it_the_models_default(models, shared_data, tmp_path):  # noqa: F811
    """`--hflip-tta`: the card records it, its NME is the mirrored average's, and the shipped model
    applies it without being asked."""
    val = shared_data("aflw_val")
    assert main(["ship", str(models / "m.pt"), "--name", "budget", "--val", str(val), "--terms", TERMS,
                 "--out", str(tmp_path), "--runs", "3", "--hflip-tta"]) == 0
    card = read_onnx_card(tmp_path / "budget.onnx")
    assert card["hflip_tta"] is True
    predictor = OnnxPredictor(tmp_path / "budget.onnx", threads=1)
    assert evaluate(predictor, val)[0]["nme_384"] == pytest.approx(card["val_nme_384"], abs=1e-4)
    assert evaluate(predictor, val, hflip_tta=False)[0]["nme_384"] != pytest.approx(card["val_nme_384"], abs=1e-4)



def test_shipping_a_flip_tta_onnx_keeps_its_tta(models, shared_data, tmp_path):  # noqa: F811
    """An ONNX measured with its own flip TTA is shipped as such: the card says so and quotes that NME."""
    val = shared_data("aflw_val")
    assert main(["ship", str(models / "m.pt"), "--name", "budget", "--val", str(val), "--terms", TERMS,
                 "--out", str(tmp_path / "first"), "--runs", "3", "--hflip-tta"]) == 0
    assert OnnxPredictor(tmp_path / "first" / "budget.onnx", threads=1).hflip_tta is True
    assert main(["ship", str(tmp_path / "first" / "budget.onnx"), "--name", "again", "--val", str(val), "--terms", TERMS,
                 "--out", str(tmp_path / "again"), "--runs", "3"]) == 0
    first, again = (read_onnx_card(tmp_path / d / f"{n}.onnx") for d, n in (("first", "budget"), ("again", "again")))
    assert again["hflip_tta"] is True
    assert again["val_nme_384"] == pytest.approx(first["val_nme_384"], abs=1e-4)


def test_the_listing_times_every_pass_a_flip_tta_model_runs(models, shared_data, tmp_path, monkeypatch):  # noqa: F811
    """The card times one pass; `facelm models --pretrained` shows a flip-TTA model's two."""
    for name, flags in (("fast", []), ("budget", ["--hflip-tta"])):
        assert main(["ship", str(models / "m.pt"), "--name", name, "--val", str(shared_data("aflw_val")),
                     "--terms", TERMS, "--out", str(tmp_path), "--runs", "3", *flags]) == 0
    monkeypatch.setattr(shipped, "WEIGHTS_DIR", tmp_path)
    rows = {row["name"]: row for row in pretrained_rows()}
    for name, passes in (("fast", 1), ("budget", 2)):
        per_pass = read_onnx_card(tmp_path / f"{name}.onnx")["ort_ms_per_face_1_thread"]
        assert rows[name]["passes"] == passes and rows[name]["ms"] == pytest.approx(passes * per_pass)


def test_ship_takes_the_terms_from_the_recorded_sources(models, shared_data, tmp_path):  # noqa: F811
    """Without --terms, the card's terms are those of every source the checkpoint's config names, and
    the card says whether the model is challenge-compliant; its source is no absolute build path."""
    import torch

    argv = ["--name", "fast", "--val", str(shared_data("aflw_val")), "--out", str(tmp_path / "out"), "--runs", "3"]
    assert main(["ship", str(models / "m.pt"), *argv]) == 2  # no recorded config: --terms is needed
    assert not (tmp_path / "out").exists()
    checkpoint = torch.load(models / "m.pt", weights_only=False)
    checkpoint["meta"]["config"] = {"data_dir": "data", "splits": {"train": "synthetics_train"},
                                    "train_sets": ["300w_train"], "models": [{"name": "pfld_025", "kwargs": {}}]}
    torch.save(checkpoint, tmp_path / "m.pt")
    assert main(["ship", str(tmp_path / "m.pt"), *argv]) == 0
    card = read_onnx_card(tmp_path / "out" / "fast.onnx")
    assert card["terms"] == "300-W: non-commercial research use" and card["challenge_compliant"] is False
    assert not card["source"].startswith("/"), card["source"]
    assert "**not challenge-compliant**" in (tmp_path / "out" / "fast.md").read_text()


def test_the_registry_lists_it_and_it_is_the_default(weights_dir, aflw_test, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(shipped, "WEIGHTS_DIR", weights_dir)
    assert [m.name for m in shipped_models()] == ["fast"]
    assert main(["models", "--pretrained"]) == 0
    listed = capsys.readouterr().out
    assert "fast (default)" in listed and TERMS in listed
    crop = aflw_test / "image00002.jpg"
    assert main(["predict", str(crop), "--out", str(tmp_path / "a")]) == 0  # no --model: the shipped one
    assert json.loads((tmp_path / "a" / "image00002.json").read_text())["model"].startswith("fast@")
    assert main(["predict", str(crop), "--model", "fast", "--out", str(tmp_path / "b")]) == 0  # by name
    assert main(["predict", str(crop), "--model", "nosuch", "--out", str(tmp_path / "c")]) == 2
    assert "no shipped model 'nosuch' (shipped: fast)" in capsys.readouterr().err


def test_without_a_shipped_model_predict_asks_for_one(aflw_test, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(shipped, "WEIGHTS_DIR", tmp_path / "empty")
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(aflw_test / "image00002.jpg"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "ships no pretrained model" in err
    assert main(["models", "--pretrained"]) == 0
    assert "no pretrained model is shipped" in capsys.readouterr().out


def test_ship_takes_a_teacher_spec(shared_data, tmp_path):
    """An outside teacher (KIND:PATH, what `facelm evaluate` and distill take) ships like a model.pt; the
    card's source is the spec as given (it names no file of its own)."""
    spec = f"3ddfa_v2:{shared_data('..', 'models', '3ddfa_v2')}"
    assert main(["ship", spec, "--name", "teacher", "--val", str(shared_data("aflw_val")), "--terms", "MIT",
                 "--out", str(tmp_path), "--runs", "3"]) == 0
    card = read_onnx_card(tmp_path / "teacher.onnx")
    assert card["source"] == spec and card["name"] == "teacher" and card["val_nme_384"] < 2.0


#: the models shipped in the package, read from the folder at collection time (the release adds them)
SHIPPED = sorted(p.stem for p in WEIGHTS_DIR.glob("*.onnx"))


def test_the_registry_lists_exactly_the_shipped_files():
    """Every NAME.onnx in src/facelm/weights has its NAME.md and the registry lists each one once; nothing
    else lies there (a card without its model, a stray sidecar .json, a temporary file) but the 3D mean face."""
    files = sorted(p.name for p in WEIGHTS_DIR.iterdir() if p.name not in ("README.txt", "__pycache__", "mean_face_68.npy"))
    assert files == sorted(f"{name}{suffix}" for name in SHIPPED for suffix in (".md", ".onnx")), files
    assert sorted(m.name for m in shipped_models()) == SHIPPED
    for model in shipped_models():
        assert model.card["name"] == model.name and model.card["val_folder"] == "aflw_val" and model.card.get("terms"), \
            f"{model.onnx}: card lacks its name, val folder or terms"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_reproduces_its_cards_nme(name, aflw_val):
    """THE SHIPPED-MODEL TEST: one case per model in src/facelm/weights (none until the release ships them;
    `pytest -q tests/inference/test_shipped.py -k reproduces` after `facelm ship`)."""
    model = {m.name: m for m in shipped_models()}[name]
    nme = evaluate(OnnxPredictor(model.onnx, threads=1), aflw_val)[0]["nme_384"]
    print(f"{name}: aflw_val NME {nme:.4f} (card {model.card['val_nme_384']:.4f}), {model.card['size_mb']:.2f} MB")
    assert nme == pytest.approx(model.card["val_nme_384"], abs=0.005), name
