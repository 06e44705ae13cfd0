"""Predictor API: checkpoints, batching, frames, flip TTA, ensembles, evaluation."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from facelm.models.checkpoint import load_model
from facelm.errors import FacelmError
from facelm.challenge.evaluate import evaluate
from facelm.data.folder import imread_rgb, list_images
from facelm.inference.base import predict_folder
from facelm.inference.loading import EnsemblePredictor, load_predictor
from facelm.inference.pytorch.predictor import Predictor


@pytest.fixture
def model_path(tiny_pipeline):
    return tiny_pipeline[1][0] / "model.pt"


def test_checkpoint_round_trip(model_path):
    model, meta = load_model(model_path)
    assert model.spec["name"] == "pfld_025" and meta["input_size"] == 64 and "config" in meta


def test_not_a_model_is_one_line(tmp_path):
    for content in (b"hello", b""):
        bad = tmp_path / "bad.pt"
        bad.write_bytes(content)
        with pytest.raises(FacelmError, match="not a facelm model") as err:
            load_predictor(bad)
        assert "\n" not in str(err.value)


def test_batch_equals_single_and_frames_map_back(model_path, demo_data):
    predictor = Predictor.from_file(model_path)
    names = list_images(demo_data / "aflw_val")[:5]
    images = np.stack([imread_rgb(demo_data / "aflw_val" / n) for n in names])
    batch = predictor.predict(images, batch_size=2)
    one = predictor.predict(images[:1])
    assert np.allclose(batch[:1], one, atol=1e-3)
    half = predictor.predict([cv2.resize(img, (192, 192), interpolation=cv2.INTER_AREA) for img in images])
    assert np.allclose(half * 2, batch, atol=1.5)  # same face at half size -> half the coordinates


def test_flip_tta_is_symmetric(model_path, demo_data):
    predictor = Predictor.from_file(model_path)
    image = imread_rgb(demo_data / "aflw_val" / list_images(demo_data / "aflw_val")[0])
    from facelm.landmarks68 import flip_horizontal

    tta = predictor.predict(image[None], hflip_tta=True)[0]
    tta_mirror = predictor.predict(image[None, :, ::-1].copy(), hflip_tta=True)[0]
    assert np.allclose(flip_horizontal(tta_mirror, 384), tta, atol=1e-2)


def test_ensemble_is_the_weighted_mean(tiny_pipeline, demo_data, tmp_path):
    runs = tiny_pipeline[1]
    spec = {"members": [{"model": str(runs[0] / "model.pt"), "weight": 3}, {"model": str(runs[2] / "model.pt"), "weight": 1}]}
    (tmp_path / "e.json").write_text(json.dumps(spec))
    ensemble = load_predictor(tmp_path / "e.json")
    assert isinstance(ensemble, EnsemblePredictor)
    _, a = predict_folder(Predictor.from_file(runs[0] / "model.pt"), demo_data / "aflw_val")
    _, b = predict_folder(Predictor.from_file(runs[2] / "model.pt"), demo_data / "aflw_val")
    _, e = predict_folder(ensemble, demo_data / "aflw_val")
    assert np.allclose(e, 0.75 * a + 0.25 * b, atol=1e-3)


def test_evaluate_matches_the_trainers_val_score(tiny_pipeline, demo_data, tmp_path):
    config, runs = tiny_pipeline
    result, pred, _ = evaluate(Predictor.from_file(runs[0] / "model.pt"), demo_data / "aflw_val")
    saved = json.loads((runs[0] / "metrics.json").read_text())
    assert result["nme_384"] == pytest.approx(saved["val_nme_384"], rel=1e-3)
    assert {"nme_box", "nme_io", "fr_box_10", "auc_box_10", "n_images", "by_yaw"} <= set(result)
    assert np.allclose(pred, np.load(runs[0] / "val_pred.npy"), atol=1e-2)
