"""The table of ``facelm models``: every registered model with its size and CPU speed.

CPU milliseconds per image are measured at batch 1 on one thread (the challenge's
deployment case), median of several runs after a warm-up.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from facelm.errors import FacelmError
from facelm.models import count_params, create_model, list_families, list_models, model_size_mb


@torch.no_grad()
def measure_cpu_ms(model: torch.nn.Module, size: int, batch: int = 1, repeats: int = 10, threads: int = 1) -> float:
    """Median wall milliseconds per image of an eval-mode forward pass on the CPU."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = model.eval().cpu()
        x = torch.rand(batch, 3, size, size) * 255
        model(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous)
    return 1000 * float(np.median(times)) / batch


def model_table(size: int = 128, budget_mb: float = 15.0, repeats: int = 10) -> list[dict]:
    defaults = {v: f for f, v in list_families().items()}
    rows = []
    for name in list_models():
        model = create_model(name)
        mb = model_size_mb(model)
        try:
            cpu_ms = measure_cpu_ms(model, size, repeats=repeats)
        except RuntimeError as err:  # e.g. an input smaller than the network's kernels
            raise FacelmError(f"{name} cannot run on {size}x{size} inputs ({str(err).splitlines()[0]})") from None
        rows.append({"name": name, "family_default": defaults.get(name, ""), "params": count_params(model), "mb": mb,
                     "cpu_ms": cpu_ms, "within_budget": mb <= budget_mb})
    return rows


def print_model_table(size: int, repeats: int, markdown: bool) -> None:
    """Print :func:`model_table` (``facelm models``; the command lives in :mod:`facelm.inference.model_list`)."""
    rows = model_table(size, repeats=repeats)
    if markdown:
        print(f"| model | default of | params | MB | CPU ms/img ({size} px, 1 thread) |")
        print("|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['name']} | {r['family_default']} | {r['params']:,} | {r['mb']:.2f} | {r['cpu_ms']:.1f} |")
    else:
        print(f"{'model':<28}{'default of':<14}{'params':>12}{'MB':>8}{'ms/img':>9}")
        for r in rows:
            flag = "" if r["within_budget"] else "  OVER BUDGET"
            print(f"{r['name']:<28}{r['family_default']:<14}{r['params']:>12,}{r['mb']:>8.2f}{r['cpu_ms']:>9.1f}{flag}")
