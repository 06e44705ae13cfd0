# Training stage (facelm.training): Optuna workers share one study; the best parameters feed
# K-fold training, one job per (model, fold), each on the cached, checked data. A rule's `reads`
# param is what its verb reads (facelm.verbs.COMMANDS): changing one of those keys reruns it.
TUNE_WORKERS = range(CFG.tune.workers)


rule tune_worker:
    """Run trials until the study holds tune.n_trials finished trials (pruned/failed count)."""
    input:
        folds=layout.folds_csv(CFG),
        caches=caches_for([*TRAIN_KEYS, SPLIT_KEYS["val"]], SIZE),
    output:
        layout.tune_done(CFG, "{worker}"),
    params:
        reads=read_values("tune", config),
    threads: COMPUTE.threads
    resources:
        **TRAINING,
    log:
        RESULTS / "logs" / "tune" / "worker{worker}.log",
    conda:
        "../../envs/facelm.yaml"
    shell:
        "OMP_NUM_THREADS={threads} {FACELM} tune --config {CONFIG_FILE} --worker {wildcards.worker} 2> {log}"


rule tune_best:
    """The best complete trial's parameters (an empty set when none completed)."""
    input:
        [layout.tune_done(CFG, worker) for worker in TUNE_WORKERS],
    output:
        BEST_PARAMS,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/facelm.yaml"
    shell:
        "{FACELM} tune --config {CONFIG_FILE} --best {output}"


def train_inputs(wc):
    entry = MODEL_IDS[wc.model_id]
    inputs = {
        "folds": layout.folds_csv(CFG),
        "caches": caches_for([*TRAIN_KEYS, SPLIT_KEYS["val"]], model_sizes(entry)),
    }
    if TUNE:
        inputs["best"] = BEST_PARAMS
    return inputs


rule train:
    """Train one model on one fold; writes model.pt, metrics.json, OOF and val predictions."""
    input:
        unpack(train_inputs),
    output:
        **run_outputs(layout.run_dir(CFG, "{model_id}", "{fold}"), ("model", "metrics", "oof_pred", "val_pred")),
    wildcard_constraints:
        fold=r"\d+",
    params:
        reads=lambda wc: read_values("train", config, MODEL_IDS[wc.model_id].to_dict()),
        best=f"--params {BEST_PARAMS}" if TUNE else "",
        out=lambda wc, output: Path(output.model).parent,
        per_process=lambda wc, threads: max(1, threads // DDP_PROCS),
    threads: COMPUTE.threads * DDP_PROCS
    resources:
        mem_mb=COMPUTE.train_mem_mb * DDP_PROCS,
        runtime=COMPUTE.train_runtime_min,
        gpu=COMPUTE.gpus * DDP_PROCS,
    log:
        RESULTS / "logs" / "train" / "{model_id}_fold{fold}.log",
    conda:
        "../../envs/facelm.yaml"
    shell:
        "OMP_NUM_THREADS={params.per_process} {FACELM_TRAIN} train --config {CONFIG_FILE}"
        " --model {wildcards.model_id} --fold {wildcards.fold} --out {params.out} {params.best} 2> {log}"


RUN_DIRS = [layout.run_dir(CFG, mid, fold) for mid in MODEL_IDS for fold in FOLDS]


rule distill:
    """One student within budget_mb learns from the teacher's flip-TTA labels of every augmented image and the ground truth."""
    input:
        teacher=[] if OUTSIDE_TEACHER else [TEACHER],
        caches=caches_for([*TRAIN_KEYS, SPLIT_KEYS["val"]], model_sizes(CFG.distill.student)),
    output:
        **run_outputs(STUDENT_DIR, ("model", "metrics", "val_pred")),
    params:
        reads=read_values("distill", config),
        out=STUDENT_DIR,
        teacher=TEACHER,
    threads: COMPUTE.threads
    resources:
        **TRAINING,
    log:
        RESULTS / "logs" / "distill.log",
    conda:
        "../../envs/facelm.yaml"
    shell:
        "{FACELM} distill --config {CONFIG_FILE} --teacher '{params.teacher}' --out {params.out} --threads {threads} 2> {log}"
