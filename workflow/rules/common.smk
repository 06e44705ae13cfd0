# Config validation and the paths every rule shares (all computed by facelm.layout).
import shlex
import sys
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from facelm import layout
from facelm.atomic import atomic_open
from facelm.config import SCHEMA_PATH, is_teacher_spec, load_config, parse_config, validate_config
from facelm.errors import FacelmError
from facelm.verbs import read_values

# The files the config came from: --configfile files are merged over the Snakefile's config.yaml,
# so an error names them first.
_GIVEN = [str(f) for f in (workflow.overwrite_configfiles or [])]
_DEFAULT = [str(f) for f in workflow.configfiles if str(f) not in _GIVEN]
CONFIG_SOURCE = (", ".join(_GIVEN) + (f" (merged over {', '.join(_DEFAULT)})" if _DEFAULT else "")) if _GIVEN else \
    (", ".join(_DEFAULT) or "config")
try:
    # facelm's validator first: it names the offending key in one line.
    validate_config(config, CONFIG_SOURCE)
    validate(config, str(SCHEMA_PATH), set_default=True)
except (FacelmError, WorkflowError) as err:
    sys.exit(f"facelm: {str(err).splitlines()[0]}")
# The typed, read-only view the package's functions take. Rules' `params` keep snakemake's plain
# `config` values (facelm.verbs.read_values): Snakemake compares them between runs to decide what to rerun.
CFG = parse_config(config)

# Rules run the package with the interpreter that runs Snakemake (the project's .venv); under
# `--sdm conda` they run it from src/ with the conda environment's Python instead.
_CONDA = any(str(m).lower().endswith("conda") for m in workflow.deployment_settings.deployment_method)
_PYTHON = f"PYTHONPATH={workflow.basedir}/src python" if _CONDA else sys.executable
FACELM = f"{_PYTHON} -m facelm"
RESULTS = layout.results_dir(CFG)

# What each job asks the scheduler for (config `compute`): Snakemake counts threads against
# --cores and `gpu` against `--resources gpu=N` on one machine; profiles/slurm turns threads,
# mem_mb, runtime and gpu into sbatch's --cpus-per-task, --mem, -t and --gpus. Jobs that train
# take compute.*; the light steps take the small fixed amounts written in their rules.
COMPUTE = CFG.compute
DDP_PROCS = COMPUTE.ddp_procs
TRAINING = {"mem_mb": COMPUTE.train_mem_mb, "runtime": COMPUTE.train_runtime_min, "gpu": COMPUTE.gpus}
# compute.ddp_procs > 1: a train job is one torchrun with that many processes on one node
# (--standalone: a free local rendezvous port, so several such jobs share a machine).
FACELM_TRAIN = (
    FACELM if DDP_PROCS == 1
    else f"{_PYTHON} -m torch.distributed.run --standalone --nproc_per_node {DDP_PROCS} -m facelm"
)


def _write_if_changed(path: Path, text: str) -> None:
    """Keep the resolved config's mtime unless its content changes (so nothing reruns needlessly)."""
    if not path.exists() or path.read_text() != text:
        with atomic_open(path, "w") as handle:
            handle.write(text)


# Every `facelm` command reads this file: config.yaml plus any `snakemake --config` overrides,
# validated and default-filled, so steps run by the DAG and by hand see the same settings.
CONFIG_FILE = RESULTS / "config.resolved.yaml"
_write_if_changed(CONFIG_FILE, yaml.safe_dump(config, sort_keys=False))

DATASETS = layout.datasets(CFG)
SPLIT_KEYS = {split: layout.dataset_key(entry) for split, entry in CFG.splits.to_dict().items()}
TRAIN_KEYS = [layout.dataset_key(entry) for entry in CFG.train_sets]
SIZE = CFG.train.size
MODEL_IDS = {entry.id: entry for entry in CFG.models}
FOLDS = list(CFG.folds.train_folds)
TUNE = CFG.tune.enabled
BEST_PARAMS = layout.best_params(CFG)
# With tuning on, every step after it reads the config with the best trial's values applied,
# written by the tune_best checkpoint (facelm.training.params.tuned_config); else the resolved one.
RUN_CONFIG_FILE = layout.tuned_config(CFG) if TUNE else CONFIG_FILE
# ... an input of those steps for its order alone: `ancient`, as the checkpoint rewrites it on any change
# of the resolved config, and what a step reads of it reaches its `reads` param.
RUN_CONFIG_INPUT = [ancient(RUN_CONFIG_FILE)] if TUNE else []
ENSEMBLE = layout.ensemble_spec(CFG)
SUBMISSION_DIR = layout.submission_dir(CFG)
SUBMISSION_ZIP = layout.submission_file(CFG, "zip")
REPORT = layout.report(CFG)
# Distillation: the teacher (distill.teacher, or an ensemble of the run's fold models) and the
# student's run folder; in challenge mode (ensemble.single_model) the student is the submission.
DISTILL = CFG.distill.enabled
# An outside teacher (a spec KIND:PATH, or `teacher` for the config's teacher section) is no file of the DAG.
_TEACHER_NAMED = CFG.teacher.spec if CFG.distill.teacher == "teacher" else CFG.distill.teacher
OUTSIDE_TEACHER = is_teacher_spec(_TEACHER_NAMED)
TEACHER = _TEACHER_NAMED if OUTSIDE_TEACHER else Path(_TEACHER_NAMED) if _TEACHER_NAMED else layout.teacher_spec(CFG)
STUDENT_DIR = layout.distill_dir(CFG)
# The 68-point BFM beside a 3DDFA_V2 teacher: the model card also bins faces by a 3D fit's yaw
# (evaluation only; it trains nothing, so a challenge run may use it too).
_BFM_BASES = Path(CFG.teacher.path) / "bfm68_bases.npz"
FACE_MODEL_ARG = f"--face-model {shlex.quote(CFG.teacher.path)}" if CFG.teacher.kind == "3ddfa_v2" and _BFM_BASES.is_file() else ""
SUBMIT_STUDENT = DISTILL and CFG.ensemble.single_model


def check_reports(keys):
    return [layout.check_report(CFG, key) for key in keys]


def training_caches(cfg, size):
    """The caches a training job reads: the train sets and the val set at ``cfg``'s gamma and ``size``."""
    return [layout.cache_dir(cfg, key, cfg.preprocess.gamma, cfg.preprocess.gamma_mode, size)
            for key in [*TRAIN_KEYS, SPLIT_KEYS["val"]]]


def run_config():
    """``(plain dict, Config)`` the steps after tuning read: the tuned file, else the resolved config.
    Before the tune_best checkpoint first wrote it, Snakemake waits on the checkpoint. Once it is
    there it is read as it is: the steps take it as an input, so a rerun of the checkpoint comes first
    and Snakemake then evaluates them again (asking the checkpoint each time would leave their
    downstream jobs marked to rerun after a complete run)."""
    if not TUNE:
        return config, CFG
    if not RUN_CONFIG_FILE.exists():
        checkpoints.tune_best.get()
    tuned = load_config(RUN_CONFIG_FILE)
    return tuned.to_dict(), tuned


def run_reads(verb):
    """The ``reads`` param of a rule after tuning: what ``verb`` reads in :func:`run_config`."""
    return lambda wc: read_values(verb, run_config()[0])


def run_entry(model_id):
    """(Config, models entry) a (model, fold) job trains: the entry of the config's ``model_id`` in
    :func:`run_config` (a tuned head changes its id, not the run folder it trains in)."""
    _, cfg = run_config()
    return cfg, cfg.models[list(MODEL_IDS).index(model_id)]


def run_outputs(run, roles):
    """The named outputs of a training run folder (a path or a wildcard pattern)."""
    return {role: layout.run_file(run, role) for role in roles}
