"""ONNX export of a model or an ensemble, self-contained: the model card is inside the file.

    facelm export runs/mobilenetv3_small_100-heatmap/fold0/model.pt out/face.onnx
    -> out/face.onnx  (input "image" float32 (B, 3, S, S) 0..255, output "landmarks" (B, 68, 2) normalised;
                       its metadata_props hold the card: input size, gamma, crop framing, MB, params,
                       FLOPs, val NME, source; :func:`facelm.inference.onnx_predictor.read_onnx_card`)

The graph takes plain pixels *after* gamma (gamma needs the full-resolution image, so it
stays outside the graph exactly like :func:`facelm.data.preprocess.preprocess_images`); the card
records the gamma and its mode so :class:`facelm.inference.onnx_predictor.OnnxPredictor` applies it.
Files exported before the card moved inside read it from a sidecar ``face.json``.

An ensemble ``.json`` (from ``facelm ensemble``) exports as ONE graph: every member runs on
the same input and their landmarks are averaged with the spec's weights. The graph input has
the largest member size; a smaller member sees the input box-averaged by an integer factor
(``avg_pool2d`` with kernel = stride = k, which is what ``cv2.INTER_AREA`` computes for an
integer downscale), so member sizes must divide the largest one.

Exporter: the TorchScript-based one (``dynamo=False``; torch 2.14 defaults to dynamo). Both
give the same numbers for mobilenetv3_small_100 (heatmap) and pfld_025 (max difference to eager
4.6e-5 px and 0 px in the 384 frame), but the dynamo exporter takes 4-5x longer (12.1 s vs 2.6 s
and 9.2 s vs 2.3 s on the shared 2-core VM), which matters for tests and for exporting
ensembles with many members. The exporter runs the module in eval mode but restores its previous
mode on exit, so the graph is built in eval mode (a train-mode wrapper would leave BatchNorm
using batch statistics afterwards, and later PyTorch predictions would disagree with the graph).
"""

from __future__ import annotations

import argparse
import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from facelm.atomic import atomic_path
from facelm.errors import FacelmError
from facelm.inference.onnx_predictor import CARD_FORMAT, read_onnx_card
from facelm.landmarks68 import CHALLENGE_SIZE, CROP_BOX_FRACTION, CROP_CENTRE
from facelm.models.base import count_params

OPSET = 18
INPUT_NAME = "image"
OUTPUT_NAME = "landmarks"


class LandmarkGraph(nn.Module):
    """The exported computation: (B,3,S,S) 0..255 -> (B,68,2) normalised, for one model or a weighted mean.

    ``sizes[i]`` is member i's input size; the graph input has ``max(sizes)`` pixels per side.
    """

    def __init__(self, models: list[nn.Module], weights: list[float], sizes: list[int]):
        super().__init__()
        self.members = nn.ModuleList(models)
        self.input_size = max(sizes)
        bad = [s for s in sizes if self.input_size % s]
        if bad:
            raise FacelmError(f"ensemble member input sizes {sorted(set(sizes))} must each divide the largest "
                              f"({self.input_size}) to be exported as one graph")
        self.factors = [self.input_size // s for s in sizes]
        total = float(sum(weights))
        self.register_buffer("weights", torch.tensor([w / total for w in weights], dtype=torch.float32))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        out = None
        for i, (model, factor) in enumerate(zip(self.members, self.factors)):
            x = image if factor == 1 else F.avg_pool2d(image, factor)
            points = model(x)["landmarks"] * self.weights[i]
            out = points if out is None else out + points
        return out


def _load_source(source: str | os.PathLike) -> tuple[LandmarkGraph, dict]:
    """A ``.pt`` checkpoint or an ensemble ``.json`` -> (graph in eval mode, card fields)."""
    from facelm.models.checkpoint import load_model

    path = Path(source)
    if path.suffix.lower() != ".json":
        model, meta = load_model(path)
        size = int(meta["input_size"])
        card = {"kind": "model", "model": model.spec, "val_nme_384": meta.get("val_nme_384"),
                "gamma": float(meta.get("gamma", 1.0)), "gamma_mode": meta.get("gamma_mode", "fixed")}
        return LandmarkGraph([model], [1.0], [size]).eval(), card
    from facelm.models.checkpoint import read_ensemble_spec

    spec, entries = read_ensemble_spec(path)
    models, sizes, gammas, members = [], [], set(), []
    for member_path, weight in entries:
        model, meta = load_model(member_path)
        models.append(model)
        sizes.append(int(meta["input_size"]))
        gammas.add((float(meta.get("gamma", 1.0)), meta.get("gamma_mode", "fixed")))
        members.append({"model": str(member_path), "spec": model.spec, "weight": weight,
                        "input_size": sizes[-1], "val_nme_384": meta.get("val_nme_384")})
    if len(gammas) > 1:
        raise FacelmError(f"ensemble members use different gammas {sorted(gammas)}; one graph needs one", path)
    gamma, gamma_mode = gammas.pop()
    card = {"kind": "ensemble", "members": members, "val_nme_384": spec.get("val_nme_384"),
            "hflip_tta": bool(spec.get("hflip_tta", False)), "gamma": gamma, "gamma_mode": gamma_mode}
    return LandmarkGraph(models, [w for _, w in entries], sizes).eval(), card


def count_flops(graph: nn.Module, size: int) -> int:
    """FLOPs of one forward pass on one (1,3,S,S) image (FlopCounterMode: a multiply-add counts 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        graph(torch.zeros(1, 3, size, size))
    return int(counter.get_total_flops())


def export_onnx(model_or_path: nn.Module | str | os.PathLike, out_onnx: str | os.PathLike, size: int | None = None,
                meta: dict | None = None) -> dict:
    """Export to ``out_onnx`` with the model card in its metadata; returns the card.

    ``model_or_path``: a ``.pt`` checkpoint, an ensemble ``.json``, or an in-memory
    :class:`~facelm.models.base.LandmarkModel` (then ``size`` is required and ``meta`` may give
    gamma / gamma_mode / val_nme_384 like a checkpoint's meta).
    """
    import onnx

    out_onnx = Path(out_onnx)
    if out_onnx.suffix.lower() != ".onnx":
        raise FacelmError("output must end in .onnx", out_onnx)
    if isinstance(model_or_path, nn.Module):
        if size is None:
            raise FacelmError("export of an in-memory model needs its input size")
        meta = meta or {}
        graph = LandmarkGraph([model_or_path], [1.0], [int(size)]).eval()
        card = {"kind": "model", "model": getattr(model_or_path, "spec", {}), "val_nme_384": meta.get("val_nme_384"),
                "gamma": float(meta.get("gamma", 1.0)), "gamma_mode": meta.get("gamma_mode", "fixed")}
        source = None
    else:
        graph, card = _load_source(model_or_path)
        source = str(Path(model_or_path).resolve())
        if size is not None and int(size) != graph.input_size:
            raise FacelmError(f"model input size is {graph.input_size}, not {size}", model_or_path)
    s = graph.input_size
    flops = count_flops(graph, s)
    dummy = torch.rand(2, 3, s, s, generator=torch.Generator().manual_seed(0)) * 255
    with atomic_path(out_onnx) as tmp, warnings.catch_warnings():
        # the TorchScript exporter warns about its own deprecation and about Python ints in traced shapes
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, (dummy,), str(tmp), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                          opset_version=OPSET, dynamo=False)
        onnx.checker.check_model(str(tmp), full_check=True)
        _verify(graph, tmp, s)
        card = _export_card(card, tmp, out_onnx.name, s, graph, flops, source)
        write_onnx_card(tmp, card)
    return read_onnx_card(out_onnx)


def _export_card(card: dict, onnx_file: Path, name: str, s: int, graph: nn.Module, flops: int, source: str | None) -> dict:
    return {
        "format": CARD_FORMAT,
        "onnx": name,
        "input": {"name": INPUT_NAME, "shape": ["batch", 3, s, s], "dtype": "float32",
                  "range": "RGB 0..255 after gamma, cv2.INTER_AREA resize to input_size (facelm.data.preprocess)"},
        "output": {"name": OUTPUT_NAME, "shape": ["batch", 68, 2], "units": "normalised u = x / input_size"},
        "input_size": s,
        "normalisation": "inside the graph: x * 2/255 - 1",
        "crop_framing": {"crop_size": CHALLENGE_SIZE, "landmark_box_fraction": CROP_BOX_FRACTION,
                         "landmark_box_centre": list(CROP_CENTRE),
                         "text": "the box around the 68 points spans landmark_box_fraction of the crop side, "
                                 "its centre at landmark_box_centre (fractions of the side); facelm.inference.framing"},
        **card,
        "size_mb": onnx_file.stat().st_size / 2**20,  # of the graph; the card adds a few kB
        "params": count_params(graph),  # without training-only branches (PFLD's auxiliary net), as exported
        "flops": flops,
        "gflops": round(flops / 1e9, 4),
        "opset": OPSET,
        "source": source,
    }


def write_onnx_card(onnx_file: str | os.PathLike, card: dict) -> None:
    """Store ``card`` in the ONNX file's metadata_props (one key per field, values JSON), in place.

    Replaces any facelm card already there; other metadata is kept. Needs the ``onnx`` package
    (the training extra); reading needs only onnxruntime.
    """
    import json

    import onnx

    model = onnx.load(str(onnx_file))
    kept = [(p.key, p.value) for p in model.metadata_props if p.key not in card]
    del model.metadata_props[:]
    for key, value in kept + [(key, json.dumps(value)) for key, value in card.items()]:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(onnx_file))


def _verify(graph: nn.Module, onnx_file: Path, size: int, tolerance_px: float = 1e-3) -> None:
    """Run the exported file at another batch size than the export's and compare with eager PyTorch.

    Catches graphs whose batch axis was frozen by tracing (e.g. a ``reshape(len(x), ...)`` in
    a model: the TorchScript exporter records Python ints as constants) before the file is kept.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 4  # the failure is reported below, as one line
    x = torch.rand(3, 3, size, size, generator=torch.Generator().manual_seed(1)) * 255
    with torch.no_grad():
        expected = graph(x).numpy()
    try:
        sess = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
        got = sess.run(None, {INPUT_NAME: x.numpy()})[0]
    except Exception as err:  # onnxruntime's exception types are not part of its public API
        raise FacelmError(f"exported graph fails at batch 3 (batch axis not dynamic?): "
                          f"{str(err).splitlines()[0][:200]}") from None
    error_px = float(np.abs(got - expected).max()) * 384
    if not error_px <= tolerance_px:
        raise FacelmError(f"exported graph disagrees with PyTorch by {error_px:.2g} px (384 frame) at batch 3")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="facelm model.pt or an ensemble .json")
    parser.add_argument("out", help="output .onnx (the model card goes into its metadata)")


def main(args: argparse.Namespace) -> int:
    card = export_onnx(args.model, args.out)
    print(f"exported {args.out}: input {card['input_size']} px, {card['params']:,} params, "
          f"{card['size_mb']:.2f} MB, {card['gflops']:.3f} GFLOPs; card in its metadata")
    return 0
