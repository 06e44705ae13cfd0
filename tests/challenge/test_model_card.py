"""Model card: its figures are the evaluation's figures, and its sizes are the model's."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from facelm.challenge.evaluate import evaluate
from facelm.inference.loading import load_predictor
from facelm.models.checkpoint import load_model


def test_card_quotes_the_evaluation_and_the_weight_size(tiny_pipeline, demo_data, tmp_path):
    _, runs = tiny_pipeline
    model_pt = runs[0] / "model.pt"
    out = tmp_path / "card" / "MODEL_CARD.md"
    result = subprocess.run([sys.executable, "-m", "facelm", "model-card", str(model_pt), str(demo_data / "aflw_val"),
                             "--out", str(out), "--runs", "5"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    card = json.loads(out.with_suffix(".json").read_text())
    scores, _, _ = evaluate(load_predictor(model_pt), demo_data / "aflw_val")
    assert card["scores"]["nme_384"] == pytest.approx(scores["nme_384"], rel=1e-5)
    model, _ = load_model(model_pt)
    aux = sum(p.numel() for p in getattr(model, "aux", torch.nn.Identity()).parameters())  # PFLD's training-only branch
    assert card["params"] == sum(p.numel() for p in model.parameters()) - aux
    assert card["float32_mb"] == pytest.approx(card["params"] * 4 / 2**20)
    assert card["ort_ms_per_face_1_thread"] > 0 and card["hflip_tta"] is False
    assert card["host"]["load_1min"] >= 0  # the ms depend on the host and what ran there: the card says how loaded it was
    text = out.read_text()
    assert f"(load average {card['host']['load_1min']:.2f} while timed)" in text
    assert f"**{scores['nme_384']:.3f}**" in text and "| 60-90° |" in text
    assert "synthetics_train" in text  # what it was trained on
    assert "drawn by facelm" in text and "FaceSynthetics" not in text  # the demo data, under its own terms


def test_card_refuses_a_bad_run_count(tiny_pipeline, demo_data, tmp_path):
    _, runs = tiny_pipeline
    result = subprocess.run([sys.executable, "-m", "facelm", "model-card", str(runs[0] / "model.pt"),
                             str(demo_data / "aflw_val"), "--out", str(tmp_path / "c.md"), "--runs", "0"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert not (tmp_path / "c.md").exists()


def test_card_reports_a_models_own_train_overrides(tiny_pipeline, tmp_path):
    """A member trained with ``models[].train`` overrides (e.g. a longer student) is reported with them."""
    import dataclasses

    from facelm.challenge.model_card import training_record
    from facelm.training.trainer import train_model

    config, _ = tiny_pipeline
    entry = dataclasses.replace(config.models[0], train={"epochs": 2})
    train_model(config, entry, 0, tmp_path / "run")
    member = training_record(tmp_path / "run" / "model.pt")["members"][0]
    assert member["train"]["epochs"] == 2 and config.train.epochs == 1
