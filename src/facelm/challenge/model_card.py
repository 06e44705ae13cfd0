"""Model card of a shipped model: accuracy on a labelled folder, size and CPU latency, in Markdown.

``facelm model-card MODEL VAL_FOLDER --out MODEL_CARD.md`` (MODEL: ``model.pt``, ``.onnx`` or an
ensemble ``.json``). The card states, for the model as it is submitted (the predictor's own flip
TTA setting unless ``--hflip-tta`` forces it):

* NME x100 with its normaliser (/384, the challenge's; /sqrt(box w*h); /outer-eye distance),
  failure rate and AUC, and the per-yaw-bin, per-region table of :mod:`facelm.challenge.evaluate`;
* float32 weight size (parameters x 4 bytes, what the challenge's budget counts) and ONNX file size;
* onnxruntime latency per face: batch 1, ONE intra-op thread, the network alone on a model-sized
  input (preprocessing excluded), median of ``--runs`` calls after a warm-up; flip TTA doubles it;
* what the model was trained on and with (from the checkpoint's recorded config), every source of
  its labels and weights with its terms, and whether it is challenge-compliant
  (:mod:`facelm.challenge.provenance`).

Latency depends on the host and on what else runs there; the card records the host beside it: CPU
count, architecture and the 1-minute load average when it was timed (near 0 = an idle host).
``benchmarks/latency.py`` times models side by side with a reference in one run.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from facelm import layout
from facelm.atomic import atomic_open, write_json
from facelm.challenge.evaluate import add_face_model_argument, evaluate, region_table
from facelm.challenge.provenance import merge_provenance, provenance, provenance_markdown
from facelm.data.limits import positive_int
from facelm.json_input import read_json


def ort_ms_per_face(onnx_path: str | os.PathLike, runs: int = 200) -> float:
    """Median onnxruntime milliseconds for one face (batch 1, one thread, network alone)."""
    from facelm.inference.onnx_predictor import OnnxPredictor

    predictor = OnnxPredictor(onnx_path, threads=1)
    size = predictor.input_size
    face = {predictor.input_name: (np.random.default_rng(0).random((1, 3, size, size)) * 255).astype(np.float32)}
    for _ in range(10):
        predictor.session.run(None, face)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        predictor.session.run(None, face)
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def host_record() -> dict:
    """The timing host: CPU count, architecture and its 1-minute load average (None where the OS has none)."""
    load = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    return {"cpus": os.cpu_count(), "machine": platform.machine(), "processor": platform.processor(), "load_1min": load}


def training_record(model_path: Path) -> dict:
    """Train sets, epochs, size and model spec(s) from a checkpoint or the members of an ensemble."""
    from facelm.models.checkpoint import load_model, read_ensemble_spec

    if model_path.suffix == ".pt":
        paths = [model_path]
    elif model_path.suffix == ".json":
        paths = [member for member, _ in read_ensemble_spec(model_path)[1]]
    else:
        return {}
    members = []
    for path in paths:
        _, meta = load_model(path)
        config = meta.get("config") or {}
        metrics_path = layout.run_file(path.parent, "metrics")
        metrics = read_json(metrics_path, "metrics file") if metrics_path.is_file() else {}
        entry = meta.get("model_entry") or {}
        train = {**(config.get("train") or {}), **(entry.get("train") or {})}  # the model's own overrides win
        if "epochs" in metrics:  # what ran: a schedule in train.steps sets the epochs at run time
            train["epochs"] = metrics["epochs"]
        taught = metrics.get("teacher") if metrics.get("distill_weight", 1.0) else None  # weight 0: no teacher pass
        members.append({"model": meta.get("model_entry"), "fold": meta.get("fold"),
                        "train_sets": config.get("train_sets"), "train": train,
                        "distill_teacher": taught, "provenance": provenance(config, taught)})
    return {"members": members}


def merged_provenance(members: list[dict]) -> dict | None:
    """The provenance of an ensemble's members together (None when none recorded its sources)."""
    return merge_provenance([m["provenance"] for m in members if m.get("provenance")])


def build_card(model_path: str | os.PathLike, val_folder: str | os.PathLike, runs: int = 200,
               hflip_tta: bool | None = None, face_model: str | os.PathLike | None = None) -> dict:
    """Scores, sizes and latency of ``model_path`` (see the module docstring), as one dict."""
    from facelm.inference.loading import load_predictor
    from facelm.inference.pytorch.export import export_onnx

    model_path = Path(model_path)
    predictor = load_predictor(model_path)
    scores, _, _ = evaluate(predictor, val_folder, hflip_tta=hflip_tta, face_model=face_model)
    tta = bool(predictor.hflip_tta if hflip_tta is None else hflip_tta)
    with tempfile.TemporaryDirectory() as tmp:
        if model_path.suffix == ".onnx":
            onnx_path = model_path
            export = predictor.card  # read by the OnnxPredictor already
        else:
            onnx_path = Path(tmp) / "model.onnx"
            export = export_onnx(model_path, onnx_path)
        size = int(export["input_size"])
        ms = ort_ms_per_face(onnx_path, runs)
    return {
        "model": str(model_path), "val_folder": str(val_folder), "hflip_tta": tta,
        "scores": scores,
        "params": int(export["params"]), "float32_mb": export["params"] * 4 / 2**20,
        "onnx_mb": float(export["size_mb"]), "gflops": export.get("gflops"), "input_size": size,
        "ort_ms_per_face_1_thread": ms, "ort_ms_per_face_as_submitted": ms * (2 if tta else 1),
        "host": host_record(),
        "training": training_record(model_path),
    }


def _load_text(host: dict) -> str:
    load = host.get("load_1min")  # absent from cards written before it was recorded
    return "" if load is None else f" (load average {load:.2f} while timed)"


def card_markdown(card: dict) -> list[str]:
    scores = card["scores"]
    lines = [
        f"# Model card: `{Path(card['model']).name}`", "",
        f"Scored on `{card['val_folder']}` ({scores['n_images']} faces), flip TTA "
        f"{'on' if card['hflip_tta'] else 'off'} (as submitted).", "",
        "| measure | value |", "|---|---|",
        f"| NME x100, /384 (the challenge's normaliser) | **{scores['nme_384']:.3f}** |",
        f"| NME x100, /sqrt(GT box w*h) | {scores['nme_box']:.3f} |",
        f"| NME x100, /outer-eye-corner distance | {scores['nme_io']:.3f} |",
        f"| failure rate (box NME > 10 %) | {scores['fr_box_10']:.3f} |",
        f"| AUC of the box-NME CED up to 10 % | {scores['auc_box_10']:.3f} |",
        f"| float32 weights | {card['float32_mb']:.2f} MB ({card['params']:,} parameters) |",
        f"| ONNX file | {card['onnx_mb']:.2f} MB, {card['gflops']} GFLOPs at {card['input_size']} px |",
        f"| onnxruntime, 1 thread, batch 1, network alone | {card['ort_ms_per_face_1_thread']:.2f} ms per face "
        f"({card['ort_ms_per_face_as_submitted']:.2f} ms as submitted) on a {card['host']['cpus']}-CPU "
        f"{card['host']['machine']} host{_load_text(card['host'])} |", "",
        "NME x100 by label yaw and face region (/384):", "", *region_table(scores), "",
    ]
    if "by_yaw_3d_fit" in scores:
        lines += ["The same, binned by the yaw of a 3D face model (BFM) fitted to the labels:", "",
                  *region_table(scores, "by_yaw_3d_fit"), ""]
    members = card["training"].get("members", [])
    if members:
        lines += ["Trained (per member):", ""]
        for member in members:
            train = member.get("train") or {}
            lines.append(f"- `{json.dumps(member.get('model'))}` fold {member.get('fold')}: train sets "
                         f"{member.get('train_sets')}, {train.get('epochs')} epochs at {train.get('size')} px, "
                         f"loss {train.get('loss')}"
                         + (f", distilled from `{member['distill_teacher']}`" if member.get("distill_teacher") else ""))
        merged = merged_provenance(members)
        if merged:
            lines += ["", *provenance_markdown(merged)]
    return lines


def add_arguments(parser) -> None:
    parser.add_argument("model", help="model.pt, .onnx or ensemble .json")
    parser.add_argument("folder", help="labelled challenge-format folder (e.g. aflw_val)")
    parser.add_argument("--out", required=True, help="MODEL_CARD.md to write (and the same name with .json)")
    parser.add_argument("--runs", type=positive_int, default=200, help="timed onnxruntime calls (median)")
    parser.add_argument("--hflip-tta", action="store_true", help="force flip TTA (default: the model's own)")
    add_face_model_argument(parser)


def main(args) -> int:
    card = build_card(args.model, args.folder, args.runs, True if args.hflip_tta else None, args.face_model)
    out = Path(args.out)
    with atomic_open(out, "w") as handle:
        handle.write("\n".join(card_markdown(card)) + "\n")
    write_json(out.with_suffix(".json"), card)
    print(f"{out}: NME {card['scores']['nme_384']:.3f}, {card['float32_mb']:.2f} MB, "
          f"{card['ort_ms_per_face_1_thread']:.2f} ms/face (ORT, 1 thread)")
    return 0
