"""Inference latency: PyTorch eager vs onnxruntime (CPU), per model.

    .venv/bin/python benchmarks/latency.py                       # a few registered models, untrained, --size
    .venv/bin/python benchmarks/latency.py runs/x/fold0/model.pt face.onnx --runs 50
    .venv/bin/python benchmarks/latency.py submissions/fast/model.pt 3ddfa_v2:../shared/models/3ddfa_v2

Each model (a registered name, a ``model.pt``, an outside teacher's spec ``KIND:PATH`` -- timed side by
side with the students, in the same run -- or an exported ``.onnx`` with its ``.pt`` source
named in the card) is exported to ONNX in a temporary folder (``facelm.inference.pytorch.export``) and timed on
random model inputs (B, 3, S, S), i.e. the network alone, preprocessing excluded:

* ms per face at batch 1 with 1 thread and with all threads (median of ``--runs`` calls),
* images/s at batch 32 with all threads (median call time),

for PyTorch eager (``torch.inference_mode``) and onnxruntime (CPUExecutionProvider, all graph
optimisations). Prints a table, the host's 1-minute load average before and after, and ends with one
JSON line (a load over 0.5 at the start gets a warning). Hosts differ more than loads do: on this
project's 2-core hosts the teacher's network has timed 0.58 to 1.35 ms, so quote a model's ms beside
a reference timed in the same run (e.g. ``3ddfa_v2:PATH``), and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from facelm.challenge.model_card import host_record
from facelm.config import is_teacher_spec
from facelm.models.checkpoint import load_model
from facelm.inference.pytorch.export import LandmarkGraph, export_onnx
from facelm.models import create_model

DEFAULT_MODELS = ["mobilenetv3_small_100", "lcnet_100", "pfld_100"]


def median_seconds(fn, runs: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class NetworkAlone(torch.nn.Module):
    """An outside teacher's network without its crop and decode (3DDFA_V2: MobileNetV1 x0.5 at its 120 px
    ROI, 62 parameters out), shaped like a model's output so it exports and times like one."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> dict:
        params = self.net(images / 255.0)
        return {"landmarks": torch.nn.functional.pad(params, (0, 136 - params.shape[1])).reshape(-1, 68, 2)}


def load(item: str, size: int) -> list[tuple[str, torch.nn.Module | Path, int]]:
    """A registered name (untrained, at ``size``) or a .pt / .onnx file -> (label, model, input size);
    the model is the .onnx file itself when its .pt source is not here."""
    if is_teacher_spec(item):
        from facelm.models.tddfa import ROI_SIZE

        model, meta = load_model(item)
        label = item.split(",")[0].split(":")[0]
        return [(f"{label} (crop+net+decode)", model, int(meta["input_size"])),
                (f"{label} (network alone)", NetworkAlone(model.net).eval(), ROI_SIZE)]
    path = Path(item)
    if path.suffix == ".onnx":
        from facelm.inference.onnx_predictor import read_onnx_card

        card = read_onnx_card(path)  # in the ONNX metadata (or an older export's sidecar .json)
        if not card.get("source") or not Path(card["source"]).exists():
            return [(str(path), path, int(card["input_size"]))]
        path = Path(card["source"])
    if path.suffix in (".pt", ".json") and path.exists():
        if path.suffix == ".json":
            sys.exit(f"{path}: time ensemble members one by one (pass their model.pt files)")
        model, meta = load_model(path)
        return [(str(path), model, int(meta["input_size"]))]
    return [(item, create_model(item).eval(), size)]


def session(onnx_path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


def measure(label: str, model: torch.nn.Module | Path, size: int, runs: int, all_threads: int, tmp: Path) -> dict:
    rng = np.random.default_rng(0)
    one = (rng.random((1, 3, size, size), np.float32) * 255).astype(np.float32)
    batch = (rng.random((32, 3, size, size), np.float32) * 255).astype(np.float32)
    if isinstance(model, Path):
        from facelm.inference.onnx_predictor import read_onnx_card

        card = read_onnx_card(model)
        row = {"model": label, "size": size, "params": card.get("params"), "gflops": card.get("gflops")}
        return _time_onnx(row, model, one, batch, runs, all_threads)
    onnx_path = tmp / f"{len(list(tmp.iterdir()))}.onnx"
    card = export_onnx(model, onnx_path, size=size)
    graph = LandmarkGraph([model], [1.0], [size]).eval()
    row = {"model": label, "size": size, "params": card["params"], "gflops": card["gflops"]}
    with torch.inference_mode():
        for threads, key in ((1, "1t"), (all_threads, "all")):
            torch.set_num_threads(threads)
            x = torch.from_numpy(one)
            row[f"torch_ms_{key}"] = 1e3 * median_seconds(lambda: graph(x), runs)
        xb = torch.from_numpy(batch)
        row["torch_img_s_b32"] = 32 / median_seconds(lambda: graph(xb), max(3, runs // 10))
    row = _time_onnx(row, onnx_path, one, batch, runs, all_threads)
    row["speedup_1t"] = row["torch_ms_1t"] / row["ort_ms_1t"]
    row["speedup_all"] = row["torch_ms_all"] / row["ort_ms_all"]
    return row


def _time_onnx(row: dict, onnx_path: Path, one: np.ndarray, batch: np.ndarray, runs: int, all_threads: int) -> dict:
    for threads, key in ((1, "1t"), (all_threads, "all")):
        sess = session(onnx_path, threads)
        row[f"ort_ms_{key}"] = 1e3 * median_seconds(lambda: sess.run(None, {"image": one}), runs)
    sess = session(onnx_path, all_threads)
    row["ort_img_s_b32"] = 32 / median_seconds(lambda: sess.run(None, {"image": batch}), max(3, runs // 10))
    return row


def _cell(row: dict, key: str, width: int, digits: int) -> str:
    value = row.get(key)
    return f"{value:>{width}.{digits}f}" if isinstance(value, (int, float)) else f"{'-':>{width}}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=DEFAULT_MODELS, help="registered names, model.pt or .onnx files")
    parser.add_argument("--size", type=int, default=128, help="input size for registered names (default 128)")
    parser.add_argument("--runs", type=int, default=30, help="timed calls at batch 1 (batch 32: runs/10, >= 3)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="'all threads' (default: all cores)")
    args = parser.parse_args()
    load_before = host_record()["load_1min"]
    if load_before is not None and load_before > 0.5:
        print(f"warning: load average {load_before:.2f} before timing: other jobs share the cores; compare only with "
              "the reference timed in this same run",
              file=sys.stderr)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for item in args.models:
            for label, model, size in load(item, args.size):
                rows.append(measure(label, model, size, args.runs, args.threads, Path(tmp)))
    head = (f"{'model':<28} {'S':>4} {'GFLOPs':>7} | {'eager ms 1t':>11} {'ort ms 1t':>9} {'x':>5} | "
            f"{f'eager ms {args.threads}t':>11} {f'ort ms {args.threads}t':>9} {'x':>5} | {'eager img/s b32':>15} {'ort img/s b32':>13}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{Path(r['model']).name if r['model'].endswith(('.pt', '.onnx')) else r['model']:<28} {r['size']:>4} "
              f"{_cell(r, 'gflops', 7, 3)} | {_cell(r, 'torch_ms_1t', 11, 2)} {_cell(r, 'ort_ms_1t', 9, 2)} "
              f"{_cell(r, 'speedup_1t', 5, 2)} | {_cell(r, 'torch_ms_all', 11, 2)} {_cell(r, 'ort_ms_all', 9, 2)} "
              f"{_cell(r, 'speedup_all', 5, 2)} | {_cell(r, 'torch_img_s_b32', 15, 1)} {_cell(r, 'ort_img_s_b32', 13, 1)}")
    load_after = host_record()["load_1min"]
    print(f"host load average (1 min): {load_before} before, {load_after} after")
    print(json.dumps({"benchmark": "latency", "threads_all": args.threads, "load_1min": [load_before, load_after],
                      "torch": torch.__version__,
                      "onnxruntime": ort.__version__, "rows": [{k: (round(v, 3) if isinstance(v, float) else v)
                                                                for k, v in r.items()} for r in rows]}))


if __name__ == "__main__":
    main()
