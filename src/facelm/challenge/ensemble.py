"""A size-budgeted ensemble picked on out-of-fold predictions.

Candidates are model ids (a backbone + head): a candidate's out-of-fold prediction of a
training row comes from the fold model that did not train on that row, and at inference the
candidate is the mean of its fold models, so its size is the sum of theirs. Greedy forward
selection with replacement (Caruana et al., 2004) adds, step by step, the candidate that most
lowers the OOF NME (/384) of the weighted mean, on the rows every candidate covers, as long as
the distinct selected candidates fit ``budget_mb``; weights are selection counts / steps.
``ensemble.single_model: true`` (the challenge's one-model rule) picks the single fold model
with the lowest OOF NME instead (with distillation the DAG passes only the student's run, so
the student is the submission). ``--teacher`` builds the distillation teacher: a real ensemble
within ``distill.teacher_budget_mb``, which may exceed ``budget_mb`` since it is never submitted. The spec's ``val_nme_384`` is computed from the members'
saved ``val_pred.npy`` (same weights); horizontal-flip TTA (no extra size) is a flag in it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from facelm import layout
from facelm.atomic import write_json
from facelm.config import Config
from facelm.errors import FacelmError
from facelm.json_input import read_json
from facelm.data.folder import open_folder
from facelm.data.folds import train_landmarks
from facelm.data.limits import POINTS
from facelm.metrics import nme
from facelm.verbs import add_config_arguments, verb_config


#: metrics.json keys the selection reads, with the types they must have.
_RUN_KEYS = {"model": str, "size_mb": (int, float), "val_nme_384": (int, float)}


def read_run(run: Path) -> dict:
    """A trained run folder's metrics and saved predictions, each checked (a run folder is input too)."""
    try:
        metrics = read_json(layout.run_file(run, "metrics"), "metrics file")
        data = {"dir": run, "metrics": metrics, "val_pred": np.load(layout.run_file(run, "val_pred"))}
        if isinstance(metrics, dict) and metrics.get("fold") is not None:
            data["oof_pred"], data["oof_rows"] = np.load(layout.run_file(run, "oof_pred")), np.load(layout.run_file(run, "oof_rows"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise FacelmError(f"incomplete run folder ({type(err).__name__}: {err})", run) from None
    for key, kind in _RUN_KEYS.items():
        if not isinstance(metrics, dict) or not isinstance(metrics.get(key), kind) or isinstance(metrics.get(key), bool):
            raise FacelmError(f"metrics.json has no valid {key!r}", layout.run_file(run, "metrics"))
    if not isinstance(metrics.get("fold"), (int, type(None))):
        raise FacelmError("metrics.json has no valid 'fold'", layout.run_file(run, "metrics"))
    if data["val_pred"].ndim != 3 or data["val_pred"].shape[1:] != (POINTS, 2):
        raise FacelmError(f"val_pred.npy has shape {data['val_pred'].shape}, expected (N, {POINTS}, 2)", run)
    if "oof_pred" in data:
        pred, rows = data["oof_pred"], data["oof_rows"]
        if pred.shape != (len(rows), POINTS, 2) or rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer):
            raise FacelmError(f"oof_pred.npy {pred.shape} and oof_rows.npy {rows.shape} do not match", run)
    return data


def candidates_from_runs(runs: list[dict], n_rows: int) -> dict[str, dict]:
    """model id -> {OOF prediction over all rows (NaN where not covered), fold runs, size, val prediction}."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for run in runs:
        groups[run["metrics"]["model"]].append(run)
    out = {}
    for mid, members in sorted(groups.items()):
        oof = np.full((n_rows, 68, 2), np.nan, np.float32)
        for run in members:
            if "oof_pred" in run:
                if len(run["oof_rows"]) and not 0 <= run["oof_rows"].min() <= run["oof_rows"].max() < n_rows:
                    raise FacelmError(f"oof_rows.npy names rows outside the {n_rows} training rows", run["dir"])
                oof[run["oof_rows"]] = run["oof_pred"]
        out[mid] = {"oof": oof, "runs": members, "size_mb": sum(r["metrics"]["size_mb"] for r in members),
                    "val": np.mean([r["val_pred"] for r in members], axis=0)}
    return out


def greedy_select(preds: dict[str, np.ndarray], sizes: dict[str, float], gt: np.ndarray, budget_mb: float,
                  max_steps: int) -> tuple[Counter, float]:
    """Forward selection with replacement; returns (selection counts, OOF NME x100)."""
    counts: Counter = Counter()
    total = np.zeros_like(gt, dtype=np.float64)
    best = np.inf
    for step in range(1, max_steps + 1):
        choice, choice_score = None, best
        for name, pred in preds.items():
            if name not in counts and sum(sizes[n] for n in counts) + sizes[name] > budget_mb:
                continue
            score = 100 * float(nme((total + pred) / step, gt).mean())
            if score < choice_score - 1e-9:
                choice, choice_score = name, score
        if choice is None:
            break
        counts[choice] += 1
        total += preds[choice]
        best = choice_score
    return counts, best


def build_ensemble(config: Config, run_dirs: list[Path]) -> dict:
    runs = [read_run(Path(r)) for r in run_dirs]
    gt_train = train_landmarks(config)
    val_folder = open_folder(layout.dataset_folder(config, config.splits.val))
    for run in runs:
        if len(run["val_pred"]) != len(val_folder):
            raise FacelmError(f"val_pred.npy has {len(run['val_pred'])} rows, the val folder {len(val_folder)}", run["dir"])
    budget = config.budget_mb
    settings = config.ensemble
    table = [{"model": r["metrics"]["model"], "fold": r["metrics"]["fold"], "size_mb": r["metrics"]["size_mb"],
              "oof_nme_384": r["metrics"].get("oof_nme_384"), "val_nme_384": r["metrics"]["val_nme_384"]} for r in runs]

    if settings.single_model:
        fitting = [r for r in runs if r["metrics"]["size_mb"] <= budget]
        if not fitting:
            raise FacelmError(f"no trained model fits the budget of {budget} MB")
        best = min(fitting, key=lambda r: r["metrics"].get("oof_nme_384", r["metrics"]["val_nme_384"]))
        members = [{"model": str(layout.run_file(best["dir"], "model")), "weight": 1.0, "size_mb": best["metrics"]["size_mb"],
                    "model_id": best["metrics"]["model"], "fold": best["metrics"]["fold"]}]
        oof_nme, val_pred = best["metrics"].get("oof_nme_384"), best["val_pred"]
    else:
        candidates = candidates_from_runs(runs, len(gt_train))
        covered = np.all([np.isfinite(c["oof"]).all(axis=(1, 2)) for c in candidates.values()], axis=0)
        if not covered.any():
            raise FacelmError("no training row has an out-of-fold prediction from every candidate; train folds first")
        preds = {m: c["oof"][covered].astype(np.float64) for m, c in candidates.items()}
        sizes = {m: c["size_mb"] for m, c in candidates.items()}
        counts, oof_nme = greedy_select(preds, sizes, gt_train[covered], budget, settings.max_steps)
        if not counts:
            raise FacelmError(f"no candidate fits the budget of {budget} MB (smallest: {min(sizes.values()):.2f} MB)")
        steps = sum(counts.values())
        members = []
        for mid, count in counts.items():
            fold_runs = candidates[mid]["runs"]
            for run in fold_runs:
                members.append({"model": str(layout.run_file(run["dir"], "model")), "weight": count / steps / len(fold_runs),
                                "size_mb": run["metrics"]["size_mb"], "model_id": mid, "fold": run["metrics"]["fold"]})
        val_by_model = {str(layout.run_file(r["dir"], "model")): r["val_pred"] for r in runs}
        val_pred = sum(m["weight"] * val_by_model[m["model"]] for m in members)
    val_nme = 100 * float(nme(val_pred, val_folder.landmarks).mean()) if val_folder.labelled else None
    return {
        "run_name": config.run_name,
        "members": members,
        "hflip_tta": settings.hflip_tta,
        "single_model": settings.single_model,
        "total_mb": sum(m["size_mb"] for m in members),
        "budget_mb": budget,
        "oof_nme_384": oof_nme,
        "val_nme_384": val_nme,
        "val_nme_note": "from the members' saved val_pred.npy (no flip TTA)",
        "candidates": table,
    }


def add_arguments(parser) -> None:
    add_config_arguments(parser, "ensemble")
    parser.add_argument("--runs", nargs="+", required=True, help="trained run folders")
    parser.add_argument("--out", help="ensemble spec JSON (default <results_dir>/ensemble/<run_name>.json)")
    parser.add_argument("--teacher", action="store_true",
                        help="the distillation teacher: an ensemble within distill.teacher_budget_mb, flip TTA per distill.hflip_tta")


def teacher_config(config: Config) -> Config:
    """The settings a distillation teacher is picked with: a real ensemble, its own size limit."""
    return config.updated(budget_mb=config.distill.teacher_budget_mb,
                          ensemble={"single_model": False, "hflip_tta": config.distill.hflip_tta})


def main(args) -> int:
    config = verb_config("ensemble", args)
    if args.teacher:
        config = teacher_config(config)
    spec = build_ensemble(config, args.runs)
    out = Path(args.out) if args.out else layout.teacher_spec(config) if args.teacher else layout.ensemble_spec(config)
    write_json(out, spec)
    for m in spec["members"]:
        print(f"  {m['model_id']:<32} fold {m['fold']}  weight {m['weight']:.3f}  {m['size_mb']:.2f} MB")
    oof, val = (("-" if spec[key] is None else f"{spec[key]:.3f}") for key in ("oof_nme_384", "val_nme_384"))
    print(f"ensemble {out}: {len(spec['members'])} models, {spec['total_mb']:.2f} MB, OOF NME {oof}, val NME {val}")
    return 0
