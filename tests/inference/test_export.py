"""ONNX export: onnxruntime/PyTorch parity on real crops, one-graph ensembles, the model card, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from facelm.data.annot import load_annot
from facelm.models.checkpoint import save_checkpoint
from facelm.errors import FacelmError
from facelm.inference.pytorch.export import export_onnx
from facelm.data.folder import imread_rgb
from facelm.models import count_params, create_model, model_size_mb
from facelm.inference.onnx_predictor import OnnxPredictor
from facelm.inference.loading import EnsemblePredictor, load_predictor
from facelm.inference.pytorch.predictor import Predictor

torch.set_num_threads(1)  # a 2-thread OpenMP pool crawls when other jobs share the 2 cores


def _val_crops(aflw_val, n=6):
    names, landmarks = load_annot(aflw_val / "annot.pkl")
    return np.stack([imread_rgb(aflw_val / name) for name in names[:n]]), landmarks


def _checkpoint(path, name, size, landmarks, seed=0, gamma=1.0, **kwargs):
    """An untrained model made input-dependent: priors fitted, BatchNorm statistics calibrated, and
    zero-initialised output layers (regression heads start at the mean shape) given small random weights."""
    torch.manual_seed(seed)
    model = create_model(name, **kwargs)
    model.fit_priors(landmarks / 384.0)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() >= 2 and not param.any():
                param.normal_(0.0, 0.002)
    model.train()
    with torch.no_grad():  # one train-mode pass on random pixels sets BN running stats to realistic values
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.momentum = None
        model(torch.rand(8, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 255)
    model.eval()
    save_checkpoint(path, model, meta={"input_size": size, "gamma": gamma, "gamma_mode": "fixed",
                                       "size_mb": model_size_mb(model), "params": count_params(model),
                                       "val_nme_384": 9.5})
    return path


@pytest.mark.parametrize("name,kwargs", [("mobilenetv3_small_100", {"head": "heatmap"}), ("pfld_025", {})])
def test_onnxruntime_matches_pytorch_on_aflw_val(aflw_val, tmp_path, name, kwargs):
    images, landmarks = _val_crops(aflw_val)
    pt = _checkpoint(tmp_path / "model.pt", name, 96, landmarks, gamma=1.3, **kwargs)
    card = export_onnx(pt, tmp_path / "model.onnx")
    torch_pred = Predictor.from_file(pt, device="cpu").predict(images, batch_size=4)
    onnx = OnnxPredictor(tmp_path / "model.onnx", threads=1)
    onnx_pred = onnx.predict(images, batch_size=4)  # 4 then 2: the batch axis is dynamic
    assert onnx_pred.shape == (len(images), 68, 2)
    # px in the 384 frame: float32 rounding of two runtimes (1.08e-3 seen with torch on one thread)
    assert np.abs(onnx_pred - torch_pred).max() < 2e-3
    # the card's gamma reaches preprocessing: same points as the PyTorch predictor with gamma 1.3
    assert onnx.gamma == 1.3 and card["gamma"] == 1.3
    # predictions depend on the image (not a constant shape), so the comparison can catch a wrong graph
    assert np.ptp(torch_pred, axis=0).max() > 1.0
    # flip TTA goes through the shared BasePredictor path
    tta = onnx.predict(images[:2], hflip_tta=True)
    assert np.abs(tta - Predictor.from_file(pt, device="cpu").predict(images[:2], hflip_tta=True)).max() < 1e-3


def test_ensemble_exports_as_one_graph(aflw_val, tmp_path):
    import onnx

    images, landmarks = _val_crops(aflw_val, 4)
    a = _checkpoint(tmp_path / "a.pt", "pfld_025", 64, landmarks, seed=1)
    b = _checkpoint(tmp_path / "b.pt", "pfld_025", 64, landmarks, seed=2)
    spec = tmp_path / "ens.json"
    spec.write_text(json.dumps({"members": [{"model": "a.pt", "weight": 3.0}, {"model": "b.pt", "weight": 1.0}],
                                "hflip_tta": False, "val_nme_384": 4.2}))
    card = export_onnx(spec, tmp_path / "ens.onnx")
    graph = onnx.load(str(tmp_path / "ens.onnx"))
    assert [i.name for i in graph.graph.input] == ["image"] and [o.name for o in graph.graph.output] == ["landmarks"]
    assert card["kind"] == "ensemble" and [m["weight"] for m in card["members"]] == [3.0, 1.0]
    assert card["val_nme_384"] == 4.2
    onnx_pred = load_predictor(tmp_path / "ens.onnx").predict(images)
    members = [Predictor.from_file(p, device="cpu").predict(images) for p in (a, b)]
    expected = 0.75 * members[0] + 0.25 * members[1]
    assert np.abs(onnx_pred - expected).max() < 1e-3
    assert np.abs(members[0] - members[1]).max() > 1.0  # the weights matter: members disagree
    assert np.abs(EnsemblePredictor.from_file(spec).predict(images) - onnx_pred).max() < 1e-3


def test_ensemble_with_mixed_sizes_pools_inside_the_graph(aflw_val, tmp_path):
    images, landmarks = _val_crops(aflw_val, 3)
    a = _checkpoint(tmp_path / "a.pt", "pfld_025", 96, landmarks, seed=1)
    b = _checkpoint(tmp_path / "b.pt", "pfld_025", 48, landmarks, seed=2)
    spec = tmp_path / "ens.json"
    spec.write_text(json.dumps({"members": [{"model": str(a), "weight": 1.0}, {"model": str(b), "weight": 1.0}]}))
    assert export_onnx(spec, tmp_path / "ens.onnx")["input_size"] == 96
    got = OnnxPredictor(tmp_path / "ens.onnx").predict(images)
    # the 48-px member sees a float 2x2 box average of the 96-px input instead of a uint8 INTER_AREA
    # resize of the 384 crop: equal up to uint8 rounding, hence a looser tolerance than the parity test
    assert np.abs(got - EnsemblePredictor.from_file(spec).predict(images)).max() < 0.5
    c = _checkpoint(tmp_path / "c.pt", "pfld_025", 64, landmarks)
    spec.write_text(json.dumps({"members": [{"model": str(a), "weight": 1.0}, {"model": str(c), "weight": 1.0}]}))
    with pytest.raises(FacelmError, match="must each divide"):
        export_onnx(spec, tmp_path / "bad.onnx")


def test_bad_inputs_are_one_line_errors(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(FacelmError, match="junk.pt: not a facelm model"):
        export_onnx(junk, tmp_path / "x.onnx")
    with pytest.raises(FacelmError, match="must end in .onnx"):
        export_onnx(junk, tmp_path / "x.bin")
    fake = tmp_path / "fake.onnx"
    fake.write_bytes(b"\x00garbage")
    fake.with_suffix(".json").write_text(json.dumps({"input_size": 64}))
    with pytest.raises(FacelmError, match="fake.onnx: not an ONNX model") as err:
        OnnxPredictor(fake)
    assert "\n" not in str(err.value)
    import onnxruntime

    # a valid ONNX graph that is not a facelm export: no card in its metadata, no sidecar
    shutil.copyfile(Path(onnxruntime.__file__).parent / "datasets" / "sigmoid.onnx", tmp_path / "nocard.onnx")
    with pytest.raises(FacelmError, match="nocard.onnx: no facelm model card in the ONNX metadata") as err:
        OnnxPredictor(tmp_path / "nocard.onnx")
    assert "\n" not in str(err.value)
    # an older export's sidecar card that lacks input_size is its own case
    (tmp_path / "nocard.json").write_text(json.dumps({"gamma": 1.0}))
    with pytest.raises(FacelmError, match="nocard.onnx: the model card has no valid input_size"):
        OnnxPredictor(tmp_path / "nocard.onnx")
    (tmp_path / "nocard.json").write_text("[" * 100 + "]" * 100)
    with pytest.raises(FacelmError, match="nocard.json: not a valid model card .*; re-export"):
        OnnxPredictor(tmp_path / "nocard.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_older_exports_with_a_sidecar_card_still_load(aflw_val, tmp_path):
    """An export from before the card moved into the metadata: the card is read from face.json beside it,
    and passing that .json where a model is expected says what it is (not "bad ensemble")."""
    import onnx

    from facelm.inference.loading import load_predictor

    images, landmarks = _val_crops(aflw_val, 2)
    card = export_onnx(_checkpoint(tmp_path / "m.pt", "pfld_025", 64, landmarks), tmp_path / "face.onnx")
    expected = OnnxPredictor(tmp_path / "face.onnx").predict(images)
    model = onnx.load(str(tmp_path / "face.onnx"))
    del model.metadata_props[:]
    onnx.save(model, str(tmp_path / "face.onnx"))
    (tmp_path / "face.json").write_text(json.dumps({**card, "format": "facelm-onnx-1"}))
    np.testing.assert_array_equal(OnnxPredictor(tmp_path / "face.onnx").predict(images), expected)
    with pytest.raises(FacelmError, match="face.json: this is the model card of an ONNX export, not an ensemble spec"):
        load_predictor(tmp_path / "face.json")


def test_cli_export_writes_a_self_contained_onnx(aflw_val, tmp_path, capsys):
    from facelm.cli import main
    from facelm.inference.onnx_predictor import read_onnx_card

    _, landmarks = _val_crops(aflw_val, 1)
    pt = _checkpoint(tmp_path / "m.pt", "pfld_025", 64, landmarks)
    assert main(["export", str(pt), str(tmp_path / "out" / "face.onnx")]) == 0
    assert "GFLOPs" in capsys.readouterr().out
    card = read_onnx_card(tmp_path / "out" / "face.onnx")  # the card is in the file's metadata
    assert card["input_size"] == 64 and card["params"] == count_params(create_model("pfld_025"))
    assert card["gamma"] == 1.0 and card["gamma_mode"] == "fixed" and card["val_nme_384"] == 9.5
    assert card["size_mb"] == pytest.approx((tmp_path / "out" / "face.onnx").stat().st_size / 2**20, rel=0.01)
    assert card["crop_framing"]["landmark_box_fraction"] == 0.51 and card["normalisation"].startswith("inside the graph")
    assert 1e6 < card["flops"] < 1e9 and card["source"] == str(pt.resolve())
    assert card["model"]["name"] == "pfld_025" and card["input"]["shape"] == ["batch", 3, 64, 64]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["face.onnx"]  # no sidecar, no temp files
    (tmp_path / "bad.pt").write_text("x")
    assert main(["export", str(tmp_path / "bad.pt"), str(tmp_path / "b.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.pt" in err


class _FrozenBatch(torch.nn.Module):
    """A model whose traced graph freezes the batch size (``reshape(len(x), ...)`` records a constant)."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))

    def forward(self, images):
        flat = images.mean(dim=(2, 3)).repeat(1, 46)[:, :136] * self.scale / 255
        return {"landmarks": flat.reshape(len(images), 68, 2)}


def test_export_refuses_a_graph_with_a_frozen_batch_axis(tmp_path):
    with pytest.raises(FacelmError, match="fails at batch 3"):
        export_onnx(_FrozenBatch().eval(), tmp_path / "frozen.onnx", size=32)
    assert list(tmp_path.iterdir()) == []  # nothing half-written
