"""The Snakemake DAG: validated config, the whole pipeline behind `submission`, thin rules."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def snakemake(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(
        [str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--directory", str(cwd), *args],
        capture_output=True, text=True, env=env,
    )


@pytest.fixture
def workdir(tmp_path) -> Path:
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    return tmp_path


def test_dry_run_of_submission_lists_the_whole_dag(workdir):
    result = snakemake("-n", "submission", "--configfile", str(workdir / "config.yaml"), cwd=workdir)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    for rule in ("demo_data", "check_data", "gamma_cache", "folds", "tune_worker", "train", "ensemble", "submission"):
        assert f"rule {rule}:" in out, rule
    assert "checkpoint tune_best:" in out  # the train jobs read the config it writes


def test_default_target_adds_the_report(workdir):
    result = snakemake("-n", "--configfile", str(workdir / "config.yaml"), cwd=workdir)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "rule report:" in result.stdout


def test_ablation_target(workdir):
    result = snakemake("-n", "ablation", "--configfile", str(workdir / "config.yaml"), cwd=workdir)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "rule ablation:" in result.stdout


@pytest.mark.parametrize("override, key", [("train={'epochz': 3}", "train.epochz"), ("budget_mb=big", "budget_mb")])
def test_bad_config_stops_before_any_rule_with_one_line(workdir, override, key):
    result = snakemake("-n", "--configfile", str(workdir / "config.yaml"), "--config", override, cwd=workdir)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("facelm:")]
    assert len(errors) == 1 and key in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (workdir / "results" / "checks").exists()


def test_a_bad_configfile_is_named_and_the_schema_draft_raises_no_warning(workdir):
    (workdir / "typo.yaml").write_text("train: {epochz: 3}\n")
    result = snakemake("-n", "--configfile", str(workdir / "typo.yaml"), cwd=workdir)
    errors = [line for line in result.stderr.splitlines() if line.startswith("facelm:")]
    assert result.returncode != 0 and len(errors) == 1 and errors[0].startswith(f"facelm: {workdir / 'typo.yaml'}"), result.stderr
    assert "did you mean train.epochs?" in errors[0]
    clean = snakemake("-n", "--configfile", str(workdir / "config.yaml"), cwd=workdir)
    assert clean.returncode == 0 and "may not be validated correctly" not in clean.stderr, clean.stderr[-2000:]


def test_challenge_mode_with_distillation_submits_the_student(workdir):
    (workdir / "distill.yaml").write_text("distill: {enabled: true}\nensemble: {single_model: true}\n")
    result = snakemake("-n", "-p", "submission", "--configfile", str(workdir / "config.yaml"), str(workdir / "distill.yaml"),
                       cwd=workdir)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "rule teacher:" in out and "rule distill:" in out
    ensemble_cmd = next(line for line in out.splitlines() if " ensemble --config" in line and "--teacher" not in line)
    assert "--runs results/distill/" in ensemble_cmd and "results/runs/" not in ensemble_cmd


def _jobs(dry_run_stdout: str) -> list[dict]:
    """Each job of a dry run: its rule, threads and resources (name -> printed value)."""
    jobs = []
    for line in dry_run_stdout.splitlines():
        if line.startswith(("rule ", "localrule ", "checkpoint ")):
            jobs.append({"rule": line.split()[1].rstrip(":"), "threads": 1, "resources": {}})
        elif jobs and line.strip().startswith("threads:"):
            jobs[-1]["threads"] = int(line.split(":")[1])
        elif jobs and line.strip().startswith("resources:"):
            pairs = (item.split("=", 1) for item in line.split(":", 1)[1].split(", "))
            jobs[-1]["resources"] = {key.strip(): value for key, value in pairs}
    return jobs


def test_slurm_profile_dry_run_gives_every_job_its_resources(workdir):
    """What `snakemake -n --profile profiles/slurm submission` would submit (a dry run caps threads at
    --cores, hence --cores 64 to see them)."""
    (workdir / "gpu.yaml").write_text("compute: {gpus: 1, ddp_procs: 2, threads: 3}\n")
    result = snakemake("-n", "-p", "--profile", str(REPO / "profiles" / "slurm"), "--cores", "64", "submission",
                       "--configfile", str(workdir / "config.yaml"), str(workdir / "gpu.yaml"), cwd=workdir)
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = _jobs(result.stdout)
    assert len(jobs) == 15, [job["rule"] for job in jobs]
    for job in jobs:
        assert {"mem_mb", "runtime"} <= job["resources"].keys(), job
    trains = [job for job in jobs if job["rule"] == "train"]
    assert len(trains) == 4
    for job in trains:  # DDP: 2 processes x (1 GPU, 3 threads, train_mem_mb)
        assert job["resources"]["gpu"] == "2" and job["threads"] == 6 and job["resources"]["mem_mb"] == "32000"
    tune = next(job for job in jobs if job["rule"] == "tune_worker")
    assert tune["resources"]["gpu"] == "1" and tune["threads"] == 3
    light = [job for job in jobs if job["rule"] not in ("train", "tune_worker")]
    assert all(job["resources"].get("gpu", "0") == "0" for job in light)
    assert result.stdout.count("torch.distributed.run --standalone --nproc_per_node 2 -m facelm train") == 4


def test_a_cpu_box_requests_no_gpu_and_trains_in_one_process(workdir):
    result = snakemake("-n", "-p", "--cores", "64", "submission", "--configfile", str(workdir / "config.yaml"),
                       cwd=workdir)
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = _jobs(result.stdout)
    assert all(job["resources"].get("gpu", "0") == "0" for job in jobs)
    assert "torch.distributed.run" not in result.stdout


#: Loads the workflow (no job runs) and prints every rule's output patterns and resource names.
_RULES_SCRIPT = """
import json, re, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings, StorageSettings
with SnakemakeApi(OutputSettings()) as api:
    workflow = api.workflow(resource_settings=ResourceSettings(), storage_settings=StorageSettings(),
                            config_settings=ConfigSettings(configfiles=[Path(p).resolve() for p in sys.argv[2:]]),
                            snakefile=Path(sys.argv[1]), workdir=Path.cwd())._workflow
    rules = {rule.name: {"outputs": [re.sub(r"\\{(\\w+),[^}]*\\}", r"{\\1}", str(o)) for o in rule.output],
                         "resources": sorted(rule.resources)} for rule in workflow.rules}
print("RULES " + json.dumps(rules))
"""


def _rules(workdir: Path, *configfiles: Path) -> dict:
    result = subprocess.run([sys.executable, "-c", _RULES_SCRIPT, str(REPO / "Snakefile"), *map(str, configfiles)],
                            capture_output=True, text=True, cwd=workdir)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(next(line for line in result.stdout.splitlines() if line.startswith("RULES "))[6:])


def _layout_patterns(config) -> set[str]:
    """Every artefact path facelm.layout gives, with the rules' wildcards in place of their values."""
    from facelm import layout

    folders = [layout.dataset_folder(config, entry) for entry in [*config.splits.to_dict().values(), *config.prepare]]
    runs = [layout.run_dir(config, "{model_id}", "{fold}"), layout.distill_dir(config)]
    paths = [*folders, layout.check_report(config, "{key}"), layout.check_index(config, "{key}"),
             layout.cache_dir(config, "{key}", "{gamma}", "{mode}", "{size}"), layout.folds_csv(config),
             layout.tune_done(config, "{worker}"), layout.best_params(config), layout.tuned_config(config),
             layout.ensemble_spec(config),
             layout.teacher_spec(config), layout.report(config), layout.ablation_report(config),
             *[layout.run_file(run, role) for run in runs for role in layout.RUN_FILES],
             *[layout.submission_file(config, role) for role in layout.SUBMISSION_FILES]]
    return {str(path) for path in paths}


@pytest.mark.parametrize("configfile", ["config.yaml", "configs/300w.yaml"])
def test_every_rule_output_is_spelled_by_layout_and_every_rule_declares_resources(workdir, configfile):
    from facelm.config import load_config

    shutil.copy(REPO / configfile, workdir / "run.yaml")
    rules = _rules(workdir, workdir / "run.yaml")
    expected = _layout_patterns(load_config(workdir / "run.yaml"))
    assert "gamma_cache" in rules and "train" in rules and "all" in rules
    if "300w" in configfile:
        assert any(name.startswith("prepare_") for name in rules)
    for name, rule in rules.items():
        stray = [output for output in rule["outputs"] if output not in expected]
        assert not stray, f"rule {name} spells {stray} by hand"
        if name != "all":
            assert {"mem_mb", "runtime"} <= set(rule["resources"]), f"rule {name} declares no mem_mb / runtime"


@pytest.mark.slow
def test_a_key_a_verb_reads_reruns_its_rule_and_another_does_not(tmp_path):
    """A rule's rerun trigger is its verb's table (facelm.verbs.COMMANDS): after one real run, a changed
    train_set_options reruns train, folds.k the folds rule, check.drop_bad check_data; a changed
    ensemble.max_steps or budget_mb (that none of the target's rules reads for its output) reruns nothing."""
    import yaml

    from facelm import layout
    from facelm.config import parse_config

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config.update(data_dir=str(tmp_path / "data"), make_demo_data=True, models=[{"name": "pfld_025"}])
    config["train"].update(size=64, epochs=1, batch_size=8, workers=0)
    config["tune"]["enabled"] = False
    config["folds"]["train_folds"] = [0]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    metrics = layout.run_file(layout.run_dir(parse_config(config), "pfld_025", 0), "metrics")
    target = [str(metrics), "--configfile", str(tmp_path / "config.yaml")]
    built = snakemake(*target, "--cores", "2", cwd=tmp_path)
    assert built.returncode == 0, built.stderr[-3000:]
    assert "Nothing to be done" in snakemake("-n", *target, cwd=tmp_path).stdout
    for change, rule in (({"train_set_options": {"synthetics_train": {"repeat": 2}}}, "train"),
                         ({"ensemble": {**config["ensemble"], "max_steps": 3}}, None),
                         ({"folds": {**config["folds"], "k": 4}}, "folds"),
                         ({"budget_mb": 30}, None),
                         ({"check": {"drop_bad": False}}, "check_data")):
        (tmp_path / "changed.yaml").write_text(yaml.safe_dump({**config, **change}))
        dry = snakemake("-n", str(metrics), "--configfile", str(tmp_path / "changed.yaml"), cwd=tmp_path)
        assert dry.returncode == 0, dry.stderr[-3000:]
        assert (f"rule {rule}:" in dry.stdout if rule else "Nothing to be done" in dry.stdout), (change, dry.stdout[-3000:])


@pytest.mark.slow
def test_after_tuning_the_dag_builds_the_tuned_gamma_cache_and_trains_from_the_tuned_config(tmp_path):
    """The tune_best checkpoint writes results/config.tuned.yaml; the train jobs after it read that file, and
    the cache for the tuned gamma is a gamma_cache job of the DAG (not built inside a train job)."""
    import yaml

    from facelm import layout
    from facelm.config import load_config, parse_config
    from facelm.data.cache import cache_is_fresh

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config.update(data_dir=str(tmp_path / "data"), make_demo_data=True, models=[{"name": "pfld_025"}])
    config["train"].update(size=64, epochs=1, batch_size=8, workers=0)
    config["tune"].update(model={"name": "pfld_025"}, n_trials=1, epochs=1,
                          search_space={"gamma": {"type": "float", "low": 1.3, "high": 1.4}})
    config["folds"]["train_folds"] = [0]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    tuned_file = layout.tuned_config(parse_config(config))
    built = snakemake(str(tuned_file), "--cores", "2", "--configfile", str(tmp_path / "config.yaml"), cwd=tmp_path)
    assert built.returncode == 0, built.stderr[-3000:]
    gamma = load_config(tmp_path / tuned_file).preprocess.gamma
    assert 1.3 <= gamma <= 1.4
    tuned = load_config(tmp_path / tuned_file)
    train_cache = tmp_path / layout.cache_dir(tuned, "synthetics_train", gamma, "fixed", 64)
    if train_cache.exists():  # the best trial's cache is the one the train job reads (it builds none) ...
        assert cache_is_fresh(tmp_path / "data" / "synthetics_train", train_cache, gamma, "fixed", 64,
                              tmp_path / layout.check_index(tuned, "synthetics_train"))
        for key in ("synthetics_train", "aflw_val"):  # ... and, once gone, a job of the DAG builds it
            shutil.rmtree(tmp_path / layout.cache_dir(tuned, key, gamma, "fixed", 64))
    metrics = layout.run_file(layout.run_dir(parse_config(config), "pfld_025", 0), "metrics")
    dry = snakemake("-n", "-p", str(metrics), "--configfile", str(tmp_path / "config.yaml"), cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr[-3000:]
    caches = [line for line in dry.stdout.splitlines() if " -m facelm cache " in line]
    assert len(caches) == 2 and all(f"--gamma {layout.gamma_text(gamma)} " in line for line in caches), dry.stdout
    assert "rule tune_best:" not in dry.stdout and f"train --config {tuned_file} --model pfld_025" in dry.stdout
