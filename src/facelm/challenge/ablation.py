"""``facelm ablation``: every surveyed method trained with one short schedule, side by side.

Each method of ``config.ablation.methods`` (a family name such as ``asmnet`` or a
registered variant) is trained by :func:`facelm.training.trainer.train_model` on
``ablation.train_set`` only, for ``ablation.epochs`` epochs at ``ablation.size`` pixels, on all
rows (``fold=None``), validated on ``config.splits.val``, into
``<results_dir>/ablation/<method>/``. The remaining training settings (loss, lr, batch size,
augmentation, seed) come from ``config.train`` and are the same for every method; model
entries' own overrides are deliberately not used, so the comparison is like for like.
The table lists the registered variant, parameters and saved size (from the run's
``metrics.json``), CPU milliseconds per face of the saved ``model.pt`` (batch 1, one thread, at
the ablation size) and validation NME x100 (/384).
Runs resume (the trainer continues from ``last.ckpt``), so a rerun only trains what is missing.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from facelm import layout
from facelm.atomic import atomic_open
from facelm.models.checkpoint import load_model
from facelm.data.limits import positive_int
from facelm.config import Config, ModelSpec
from facelm.models import resolve_name
from facelm.models.listing import measure_cpu_ms
from facelm.training.trainer import train_model
from facelm.verbs import add_config_arguments, verb_config


def ablation_config(config: Config) -> tuple[Config, dict]:
    """The config the ablation trains with (only ``ablation.train_set``) and the shared train overrides."""
    ablation = config.ablation
    return config.updated(train_sets=[ablation.train_set]), {"epochs": ablation.epochs, "size": ablation.size}


def run_ablation(config: Config, out_md: str | Path, cpu_repeats: int = 10) -> list[dict]:
    """Train every ablation method and write the markdown table to ``out_md``; returns the rows."""
    run_config, schedule = ablation_config(config)
    size = schedule["size"]
    rows = []
    for method in config.ablation.methods:
        variant = resolve_name(method)
        entry = ModelSpec.from_dict({"name": variant, "train": schedule})
        started = time.perf_counter()
        out_dir = layout.results_dir(config) / "ablation" / method
        metrics = train_model(run_config, entry, None, out_dir)
        model, _meta = load_model(layout.run_file(out_dir, "model"))
        rows.append({
            "method": method, "variant": variant, "params": metrics["params"], "mb": metrics["size_mb"],
            "cpu_ms": measure_cpu_ms(model, size, batch=1, repeats=cpu_repeats, threads=1),
            "val_nme_384": metrics["val_nme_384"], "seconds": time.perf_counter() - started,
        })
    write_table(rows, config, out_md)
    return rows


def write_table(rows: list[dict], config: Config, out_md: str | Path) -> None:
    """The ablation table as markdown, written atomically."""
    ablation, train = config.ablation, config.train
    lines = [
        "# Ablation: surveyed methods, same short schedule",
        "",
        f"Train set `{ablation.train_set}`, {ablation.epochs} epoch(s) at {ablation.size} px, "
        f"loss `{train.loss}`, batch {train.batch_size}, lr {train.lr:g}, seed {config.seed}; "
        f"validation on `{config.splits.val}`. CPU ms: one face, batch 1, one thread, "
        f"{ablation.size} px (median).",
        "",
        "| method | variant | params | MB | CPU ms/face | val NME x100 (/384) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {r['method']} | {r['variant']} | {r['params']:,} | {r['mb']:.2f} | {r['cpu_ms']:.1f} | "
              f"{r['val_nme_384']:.3f} |" for r in rows]
    with atomic_open(out_md, "w") as handle:
        handle.write("\n".join(lines) + "\n")


def add_arguments(parser) -> None:
    add_config_arguments(parser, "ablation")
    parser.add_argument("--out", help="markdown table to write (default <results_dir>/ablation.md)")
    parser.add_argument("--threads", type=positive_int, help="torch intra-op threads for training (default: torch's)")


def main(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    config = verb_config("ablation", args)
    out = Path(args.out) if args.out else layout.ablation_report(config)
    rows = run_ablation(config, out)
    for r in rows:
        print(f"{r['method']:<14} {r['variant']:<18} {r['mb']:6.2f} MB  {r['cpu_ms']:6.1f} ms  "
              f"val NME {r['val_nme_384']:.3f}  ({r['seconds']:.0f} s)")
    print(f"wrote {out}")
    return 0
