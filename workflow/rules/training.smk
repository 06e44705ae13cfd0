# Training stage (facelm.training): Optuna workers share one study; the tune_best checkpoint writes
# the config with the best trial's values applied (RUN_CONFIG_FILE), which K-fold training reads,
# one job per (model, fold), each on the cached, checked data at the tuned gamma and size. A rule's
# `reads` param is what its verb reads (facelm.verbs.COMMANDS) in that config: changing one of
# those keys reruns it.
TUNE_WORKERS = range(CFG.tune.workers)


rule tune_worker:
    """Run trials until the study holds tune.n_trials finished trials (pruned/failed count)."""
    input:
        folds=layout.folds_csv(CFG),
        caches=training_caches(CFG, SIZE),
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


checkpoint tune_best:
    """The best complete trial's parameters (none when no trial completed) and the resolved config with
    them applied: the file every later step reads. Rerun on any change of the resolved config."""
    input:
        done=[layout.tune_done(CFG, worker) for worker in TUNE_WORKERS],
        config=CONFIG_FILE,
    output:
        tuned=layout.tuned_config(CFG),
        best=BEST_PARAMS,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/facelm.yaml"
    shell:
        "{FACELM} tune --config {CONFIG_FILE} --best {output.best} --tuned {output.tuned}"


def train_inputs(wc):
    cfg, entry = run_entry(wc.model_id)
    return {"folds": layout.folds_csv(CFG), "caches": training_caches(cfg, cfg.train_for(entry).size),
            "config": RUN_CONFIG_INPUT}


def train_reads(wc):
    data, _ = run_config()
    return read_values("train", data, data["models"][list(MODEL_IDS).index(wc.model_id)])


rule train:
    """Train one model on one fold; writes model.pt, metrics.json, OOF and val predictions."""
    input:
        unpack(train_inputs),
    output:
        **run_outputs(layout.run_dir(CFG, "{model_id}", "{fold}"), ("model", "metrics", "oof_pred", "val_pred")),
    wildcard_constraints:
        fold=r"\d+",
    params:
        reads=train_reads,
        model=lambda wc: run_entry(wc.model_id)[1].id,
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
        "OMP_NUM_THREADS={params.per_process} {FACELM_TRAIN} train --config {RUN_CONFIG_FILE}"
        " --model {params.model} --fold {wildcards.fold} --out {params.out} 2> {log}"


RUN_DIRS = [layout.run_dir(CFG, mid, fold) for mid in MODEL_IDS for fold in FOLDS]


def student_caches():
    _, cfg = run_config()
    return training_caches(cfg, cfg.train_for(cfg.distill.student).size)


rule distill:
    """One student within budget_mb learns from the teacher's flip-TTA labels of every augmented image and the ground truth."""
    input:
        teacher=[] if OUTSIDE_TEACHER else [TEACHER],
        caches=lambda wc: student_caches(),
        config=RUN_CONFIG_INPUT,
    output:
        **run_outputs(STUDENT_DIR, ("model", "metrics", "val_pred")),
    params:
        reads=run_reads("distill"),
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
        "{FACELM} distill --config {RUN_CONFIG_FILE} --teacher '{params.teacher}' --out {params.out} --threads {threads} 2> {log}"
