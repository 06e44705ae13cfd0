"""The ``facelm`` verbs: the module that runs each, its help line, and the config it reads.

One table, three readers:

- the CLI's command list (:mod:`facelm.cli`);
- what a verb accepts: ``--config FILE [KEY=VALUE ...]`` plus short flags that are aliases of
  dotted keys (``facelm train --config X --epochs 50`` is ``train.epochs=50``). As in timm's
  ``train.py``, the config file sets the defaults and the command line wins: config < flags <
  overrides. A flag or override naming a key the verb does not read is refused, so nothing given
  on the command line is silently dropped (:func:`verb_config`);
- what decides a rerun: the workflow's rule ``params`` and the trainer's resume fingerprint both
  take :func:`read_values`, so a key that changes a verb's output reruns it, and no other does.

``reads``: keys (top-level sections or dotted keys) whose values change what the verb makes.
``also``: keys it reads without changing what it makes (where files go, limits it checks); they
may be overridden but trigger no rerun. ``models`` in ``reads`` stands for the one model entry a
job trains, so changing one entry reruns that entry's jobs alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, NamedTuple

from facelm.errors import FacelmError

if TYPE_CHECKING:  # the config module (jsonschema, yaml) is imported when a verb reads a config, not by `facelm --help`
    from facelm.config import Config


class Verb(NamedTuple):
    module: str
    help: str
    reads: tuple[str, ...] = ()
    also: tuple[str, ...] = ()
    flags: Mapping[str, str] = {}  # argparse dest -> the dotted key it sets


#: what a trained model depends on (the train, distill and tune verbs share it)
TRAINING_READS = ("data_dir", "splits", "train_sets", "train_set_options", "seed", "preprocess", "augment", "folds",
                  "train")
#: what a training verb reads without it changing the weights
TRAINING_ALSO = ("results_dir", "run_name", "budget_mb")
TRAIN_FLAGS = {"epochs": "train.epochs", "size": "train.size", "loss": "train.loss", "lr": "train.lr",
               "batch_size": "train.batch_size", "workers": "train.workers", "results_dir": "results_dir"}

#: command -> what runs it, what it reads (a verb with no ``reads`` takes no config file)
COMMANDS: dict[str, Verb] = {
    "validate-config": Verb("facelm.config", "validate a config file against the schema"),
    "make-demo-data": Verb("facelm.data.demo", "write a small self-made dataset in the challenge layout"),
    "prepare": Verb("facelm.data.prepare", "convert a FaceSynthetics or 300-W folder to the challenge format"),
    "check-data": Verb("facelm.data.checks", "check a challenge-format folder and write a report / clean index",
                       reads=("check",), flags={"drop_bad": "check.drop_bad"}),
    "cache": Verb("facelm.data.cache", "build the gamma-corrected, resized image cache of a folder"),
    "show-augment": Verb("facelm.data.show_augment", "draw a grid of augmented samples with their landmarks"),
    "models": Verb("facelm.inference.model_list", "list registered models with params, size and CPU speed (--pretrained: the shipped models)"),
    "folds": Verb("facelm.data.folds", "write the seeded K-fold split of the training sets",
                  reads=("data_dir", "train_sets", "folds.k", "seed"), also=("results_dir",)),
    "train": Verb("facelm.training.trainer", "train one model (optionally one fold)",
                  reads=(*TRAINING_READS, "models"), also=(*TRAINING_ALSO, "tune.model", "tune.search_space"),
                  flags=TRAIN_FLAGS),
    "evaluate": Verb("facelm.challenge.evaluate", "score a model on a labelled folder (NME, FR, AUC, CED)"),
    "photo-set": Verb("facelm.labels.photo_set", "turn a folder of photos into a training set labelled by a teacher"),
    "relabel": Verb("facelm.labels.relabel", "label a folder with a teacher's points (all, jaw only, or a blend)"),
    "synthesize-poses": Verb("facelm.labels.pose_synthesis", "render turned views of labelled faces from a 3D face fit"),
    "distill": Verb("facelm.training.distill", "train one student under a teacher (model or ensemble) and the labels",
                    reads=(*TRAINING_READS, "distill", "teacher"), also=TRAINING_ALSO),
    "tune": Verb("facelm.training.tune", "run Optuna trials on a shared SQLite study",
                 reads=(*TRAINING_READS, "tune"), also=TRAINING_ALSO, flags={"trials": "tune.n_trials"}),
    "ensemble": Verb("facelm.challenge.ensemble", "pick a size-budgeted ensemble from out-of-fold predictions",
                     reads=("data_dir", "train_sets", "splits.val", "budget_mb", "ensemble", "distill.teacher_budget_mb",
                            "distill.hflip_tta"), also=("results_dir", "run_name")),
    "submit": Verb("facelm.challenge.submission", "predict a test folder and write solution.txt + solution.zip"),
    "validate-submission": Verb("facelm.challenge.submission_check", "check a solution file against a test folder"),
    "score": Verb("facelm.challenge.score", "NME x100 (/384) of a solution file against an annot.pkl"),
    "model-card": Verb("facelm.challenge.model_card", "accuracy by yaw and region, size and ORT latency of a model, as Markdown"),
    "report": Verb("facelm.challenge.report", "write results/report.md with plots",
                   reads=("data_dir", "train_sets", "splits.val", "run_name", "train.size", "train.epochs", "preprocess",
                          "tune"), also=("results_dir", "submissions_dir")),
    "export": Verb("facelm.inference.pytorch.export", "export a model or ensemble to a self-contained ONNX file (card in its metadata)"),
    "ship": Verb("facelm.release.ship", "turn a trained model into a shipped pretrained model (ONNX + model card) in facelm/weights"),
    "predict": Verb("facelm.inference.predict", "predict landmarks on crops or photos (with face detection)"),
    "ablation": Verb("facelm.challenge.ablation", "train every method briefly and write the ablation table",
                     reads=("data_dir", "splits", "train_set_options", "seed", "preprocess", "augment", "train",
                            "ablation"), also=("results_dir", "budget_mb", "train_sets", "folds")),
}


def _covers(section: str, key: str) -> bool:
    return key == section or key.startswith(section + ".")


def is_read(command: str, key: str) -> bool:
    """Whether ``command`` reads the dotted ``key`` (it or a section above it is in its table)."""
    verb = COMMANDS[command]
    return any(_covers(section, key) for section in (*verb.reads, *verb.also))


def command_line_settings(command: str, args) -> list[tuple[str, Any]]:
    """``(dotted key, value)`` from the short flags given, then the ``KEY=VALUE`` overrides (in that order,
    so an override wins over a flag); one line refusing the first the verb does not read."""
    from facelm.config import parse_override

    verb = COMMANDS[command]
    settings = [(key, getattr(args, dest)) for dest, key in verb.flags.items() if getattr(args, dest, None) is not None]
    settings += [(".".join(keys), value) for keys, value in map(parse_override, getattr(args, "overrides", None) or ())]
    for key, _ in settings:
        if not is_read(command, key):
            flag = next((f"--{dest.replace('_', '-')}" for dest, k in verb.flags.items() if k == key), key)
            raise FacelmError(f"facelm {command} does not read {flag} (it reads "
                              f"{', '.join((*verb.reads, *verb.also))})")
    return settings


def verb_config(command: str, args) -> Config:
    """``args.config`` with the command line's flags and overrides applied (config < flags < overrides)."""
    from facelm.config import load_config

    return load_config(args.config, command_line_settings(command, args))


def add_config_arguments(parser, command: str, required: bool = True) -> None:
    """``--config FILE`` and the ``KEY=VALUE`` overrides of a verb that reads a config."""
    parser.add_argument("--config", required=required, help="config.yaml (flags and KEY=VALUE overrides win over it)")
    parser.add_argument("overrides", nargs="*", help=f"KEY=VALUE config overrides (dotted keys among: "
                                                     f"{', '.join((*COMMANDS[command].reads, *COMMANDS[command].also))})")


def _value_at(data: dict, key: str) -> Any:
    for part in key.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    return data


def read_values(command: str, config: dict, entry: dict | None = None) -> dict:
    """The values of the keys ``command`` reads (its ``reads``), ``models`` standing for ``entry``:
    what must change for its output to change (a rule's ``params``, the trainer's fingerprint)."""
    return {key: entry if key == "models" else _value_at(config, key) for key in COMMANDS[command].reads}
