# Optuna: tune.workers processes share one SQLite study; the best parameters feed training.
TUNE_WORKERS = range(config["tune"]["workers"])


rule tune_worker:
    """Run trials until the study holds tune.n_trials finished trials (pruned/failed count)."""
    input:
        folds=layout.folds_csv(config),
        caches=caches_for([*TRAIN_KEYS, SPLIT_KEYS["val"]], SIZE),
    output:
        layout.optuna_dir(config) / "worker{worker}.done",
    params:
        tune=config["tune"],
    log:
        RESULTS / "logs" / "tune" / "worker{worker}.log",
    conda:
        "../../envs/facelm.yaml"
    shell:
        "{FACELM} tune --config {CONFIG_FILE} --worker {wildcards.worker} 2> {log}"


rule tune_best:
    """The best complete trial's parameters (an empty set when none completed)."""
    input:
        expand(layout.optuna_dir(config) / "worker{worker}.done", worker=TUNE_WORKERS),
    output:
        BEST_PARAMS,
    conda:
        "../../envs/facelm.yaml"
    shell:
        "{FACELM} tune --config {CONFIG_FILE} --best {output}"
