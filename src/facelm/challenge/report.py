"""``results/report.md``: what the run trained, tuned, chose and scored, with PNG plots.

Sections: models x folds (OOF NME, val NME, MB, training images/s), the tuning history, the
chosen ensemble, CED curves on the validation set, and a few validation faces with predicted
(red) and true (green) points. A missing part (e.g. tuning disabled) is stated, not fatal.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from facelm import layout
from facelm.atomic import atomic_open, atomic_path
from facelm.config import Config
from facelm.errors import FacelmError
from facelm.json_input import read_json
from facelm.challenge.evaluate import plot_ced
from facelm.data.folder import imread_rgb, open_folder
from facelm.metrics import nme
from facelm.verbs import add_config_arguments, verb_config


def _fmt(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _savefig(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def runs_section(config: Config) -> tuple[list[str], list[dict]]:
    rows = sorted((read_json(p, "metrics file") | {"dir": p.parent}
                   for p in (layout.results_dir(config) / "runs").glob("*/*/metrics.json")),
                  key=lambda m: (m["model"], str(m["fold"])))
    lines = ["## Models x folds", ""]
    if not rows:
        return lines + ["No trained runs yet.", ""], rows
    lines += ["| model | fold | OOF NME | val NME | MB | params | train img/s |", "|---|---|---|---|---|---|---|"]
    for m in rows:
        lines.append(f"| {m['model']} | {m['fold']} | {_fmt(m.get('oof_nme_384'))} | {_fmt(m['val_nme_384'])} | "
                     f"{m['size_mb']:.2f} | {m['params']:,} | {_fmt(m.get('train_img_s'), 1)} |")
    return lines + ["", "NME x100, normalised by 384 (the challenge's metric).", ""], rows


def tuning_section(config: Config, out_dir: Path) -> list[str]:
    lines = ["## Tuning", ""]
    if not config.tune.enabled:
        return lines + ["Tuning was not run (tune.enabled is false).", ""]
    from facelm.training.tune import open_study, shown, storage_url, study_exists, study_name

    url = storage_url(config)
    if not study_exists(config, url):
        return lines + [f"Tuning was not run (no study `{study_name(config)}` in `{shown(url)}`).", ""]
    import matplotlib.pyplot as plt
    import optuna
    from matplotlib.ticker import MaxNLocator

    study = open_study(config, url)
    trials = study.get_trials()
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    states = {s.name: sum(t.state == s for t in trials) for s in optuna.trial.TrialState}
    lines += [f"Study `{study.study_name}` in `{shown(url)}`: " + ", ".join(f"{k.lower()} {v}" for k, v in states.items() if v), ""]
    if complete:
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.plot([t.number for t in complete], [t.value for t in complete], "o", label="trial")
        ax.plot([t.number for t in complete], np.minimum.accumulate([t.value for t in complete]), "-", label="best so far")
        ax.set_xlabel("trial")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # trials are whole numbers
        ax.set_ylabel("val NME x100")
        ax.legend()
        fig.tight_layout()
        _savefig(fig, out_dir / "report_tuning.png")
        plt.close(fig)
        best = study.best_trial
        lines += ["![tuning history](report_tuning.png)", "", f"Best trial {best.number}: val NME {best.value:.3f}, "
                  f"params `{best.params}`", ""]
    return lines


def faces_png(config: Config, pred: np.ndarray, out_png: Path, n: int = 6) -> None:
    folder = layout.dataset_folder(config, config.splits.val)
    faces = open_folder(folder)
    tiles = []
    for i in range(min(n, len(faces))):
        image = cv2.cvtColor(imread_rgb(faces.path(faces.names[i])), cv2.COLOR_RGB2BGR)
        for points, colour in ((faces.landmarks[i], (0, 200, 0)), (pred[i], (0, 0, 255))):
            for x, y in points:
                cv2.circle(image, (int(round(x)), int(round(y))), 2, colour, -1, cv2.LINE_AA)
        tiles.append(cv2.resize(image, (256, 256), interpolation=cv2.INTER_AREA))
    ok, encoded = cv2.imencode(".png", np.hstack(tiles))
    with atomic_path(out_png) as tmp:
        tmp.write_bytes(encoded.tobytes())


def ensemble_section(config: Config, runs: list[dict], out_dir: Path) -> list[str]:
    lines = ["## Ensemble", ""]
    spec_path = layout.ensemble_spec(config)
    if not spec_path.exists():
        return lines + ["No ensemble yet.", ""]
    spec = read_json(spec_path, "ensemble spec")
    lines += ["| member | fold | weight | MB |", "|---|---|---|---|"]
    lines += [f"| {m['model_id']} | {m['fold']} | {m['weight']:.3f} | {m['size_mb']:.2f} |" for m in spec["members"]]
    lines += ["", f"Total {spec['total_mb']:.2f} MB (budget {spec['budget_mb']} MB), flip TTA {spec['hflip_tta']}, "
              f"OOF NME {_fmt(spec['oof_nme_384'])}, val NME {_fmt(spec['val_nme_384'])} ({spec['val_nme_note']}).", ""]
    score = layout.submission_file(config, "val_score")
    if score.exists():
        lines += [f"Submission predictor on the val folder (`facelm score`): NME {read_json(score, 'score file')['nme_384']:.4f}.", ""]
    val = open_folder(layout.dataset_folder(config, config.splits.val))
    if val.labelled:
        ens_pred = sum(m["weight"] * np.load(layout.run_file(Path(m["model"]).parent, "val_pred")) for m in spec["members"])
        curves = {"ensemble": nme(ens_pred, val.landmarks, "box")}
        for run in runs:
            curves[f"{run['model']} f{run['fold']}"] = nme(np.load(layout.run_file(run["dir"], "val_pred")), val.landmarks, "box")
        plot_ced(curves, out_dir / "report_ced.png")
        faces_png(config, ens_pred, out_dir / "report_faces.png")
        lines += ["![CED curves on the val set](report_ced.png)", "",
                  "Val faces, true points green, ensemble predictions red:", "", "![val faces](report_faces.png)", ""]
    return lines


def gamma_text(config: Config, runs: list[dict]) -> str:
    """The gamma the runs were trained with (their recorded config.json: tuned parameters applied), else the config's."""
    used = set()
    for run in runs:
        try:
            pre = read_json(run["dir"] / "config.json", "run config")["config"]["preprocess"]
            used.add((float(pre["gamma"]), str(pre["gamma_mode"])))
        except (FacelmError, ValueError, KeyError, TypeError):
            continue
    if not used:
        return f"gamma {config.preprocess.gamma} ({config.preprocess.gamma_mode}, as configured)"
    text = ", ".join(f"{g:g} ({mode})" for g, mode in sorted(used))
    return f"gamma {text} as the runs used it" + ("" if used == {(float(config.preprocess.gamma), config.preprocess.gamma_mode)}
                                                else f" (config: {config.preprocess.gamma}; tuned values applied)")


def write_report(config: Config, out_md: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    out_dir = out_md.parent
    run_lines, runs = runs_section(config)
    lines = [f"# facelm run `{config.run_name}`", "",
             f"Train sets {list(config.train_sets)}, val `{config.splits.val}`, input size {config.train.size}, "
             f"{config.train.epochs} epochs, {gamma_text(config, runs)}.", ""]
    lines += run_lines + tuning_section(config, out_dir) + ensemble_section(config, runs, out_dir)
    with atomic_open(out_md, "w") as handle:
        handle.write("\n".join(lines))


def add_arguments(parser) -> None:
    add_config_arguments(parser, "report")
    parser.add_argument("--out", help="report path (default <results_dir>/report.md)")


def main(args) -> int:
    config = verb_config("report", args)
    out = Path(args.out) if args.out else layout.report(config)
    write_report(config, out)
    print(f"report -> {out}")
    return 0
