"""benchmarks/latency.py times a shipped .onnx beside a model it exports, in one run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from facelm.inference.pytorch.export import export_onnx
from facelm.models import create_model

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "latency.py"


def test_an_onnx_without_its_pt_source_is_timed_by_onnxruntime_alone(tmp_path):
    """A shipped file (its card names no .pt here) gets an onnxruntime row with '-' eager cells, next to
    a registered model's full row, instead of stopping the run."""
    torch.manual_seed(0)
    export_onnx(create_model("pfld_025").eval(), tmp_path / "shipped.onnx", size=64)
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "shipped.onnx"), "pfld_025", "--size", "64",
                           "--runs", "3", "--threads", "1"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = {row["model"]: row for row in json.loads(done.stdout.strip().splitlines()[-1])["rows"]}
    shipped = rows[str(tmp_path / "shipped.onnx")]
    assert shipped["size"] == 64 and shipped["ort_ms_1t"] > 0 and shipped["ort_img_s_b32"] > 0
    assert "torch_ms_1t" not in shipped and rows["pfld_025"]["torch_ms_1t"] > 0
    table_row = next(line for line in done.stdout.splitlines() if line.startswith("shipped.onnx"))
    assert table_row.split("|")[1].split()[0] == "-"
