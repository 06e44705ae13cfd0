"""Where a model's onnxruntime time goes: per operator type and per part of the graph.

    python benchmarks/ort_profile.py src/facelm/weights/fast.onnx [more.onnx ...] --runs 300

Each ``.onnx`` (a shipped model, or any ``facelm export``) runs ``--runs`` times on one thread at
batch 1 with onnxruntime's profiler on; the node events are summed and split by operator type and by
*part*: the node's name up to its ``--depth``-th path component after any ensemble member prefix
(``/net/dw5_3/...`` -> ``net/dw5_3`` at depth 2), which for facelm's graphs names the backbone stage,
the head or the decode. Time on a loaded host inflates every node alike: read the shares, and time
models against each other with ``benchmarks/latency.py``. Prints the total ms per call and
the shares, largest first.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections import defaultdict

import numpy as np
import onnxruntime as ort


def part_of(node: str, depth: int) -> str:
    parts = [p for p in node.split("/") if p]
    if parts and parts[0].startswith("members."):
        parts = parts[1:]
    return "/".join(parts[:depth]) if len(parts) > depth else "(top level)"


def profile(path: str, runs: int, depth: int) -> tuple[float, dict, dict]:
    """(mean ms per call of the profiled nodes, ms per op type, ms per part)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        options.profile_file_prefix = os.path.join(tmp, "profile")
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        feed = session.get_inputs()[0]
        shape = [1 if not isinstance(d, int) else d for d in feed.shape]
        x = (np.random.default_rng(0).random(shape) * 255).astype(np.float32)
        for _ in range(runs):
            session.run(None, {feed.name: x})
        with open(session.end_profiling()) as f:
            events = json.load(f)
    by_op, by_part = defaultdict(float), defaultdict(float)
    for event in events:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        ms = event["dur"] / 1000 / runs
        by_op[event["args"]["op_name"]] += ms
        by_part[part_of(event["name"].removesuffix("_kernel_time"), depth)] += ms
    return sum(by_op.values()), dict(by_op), dict(by_part)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help=".onnx files")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--top", type=int, default=12, help="rows per table")
    parser.add_argument("--depth", type=int, default=2, help="name components that make a part")
    args = parser.parse_args()
    for path in args.models:
        total, by_op, by_part = profile(path, args.runs, args.depth)
        print(f"\n{path}: {total:.3f} ms per call in nodes (1 thread, batch 1, {args.runs} runs)")
        for title, table in (("operator", by_op), ("part", by_part)):
            print(f"| {title} | ms | share |\n|---|---|---|")
            for name, ms in sorted(table.items(), key=lambda kv: -kv[1])[: args.top]:
                print(f"| {name} | {ms:.3f} | {100 * ms / total:.0f} % |")


if __name__ == "__main__":
    main()
