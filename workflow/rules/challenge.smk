# Challenge stage (facelm.challenge): ensemble under the size budget, the submission, the report,
# and the methods ablation. A rule's `reads` param is what its verb reads (facelm.verbs.COMMANDS)
# in the config it reads (after tuning, the tuned one): changing one of those keys reruns it.


SUBMITTED_RUNS = [STUDENT_DIR] if SUBMIT_STUDENT else RUN_DIRS


rule ensemble:
    """Greedy forward selection on out-of-fold NME, distinct members within budget_mb (in challenge
    mode with distillation: the student alone)."""
    input:
        runs=[layout.run_file(run, "metrics") for run in SUBMITTED_RUNS],
        config=RUN_CONFIG_INPUT,
    output:
        ENSEMBLE,
    params:
        reads=run_reads("ensemble"),
        runs=SUBMITTED_RUNS,
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    log:
        RESULTS / "logs" / "ensemble.log",
    conda:
        "../../envs/facelm.yaml"
    shell:
        "{FACELM} ensemble --config {RUN_CONFIG_FILE} --runs {params.runs} --out {output} 2> {log}"


rule teacher:
    """The distillation teacher: greedy ensemble of the fold models within distill.teacher_budget_mb."""
    input:
        runs=[layout.run_file(run, "metrics") for run in RUN_DIRS],
        config=RUN_CONFIG_INPUT,
    output:
        layout.teacher_spec(CFG),
    params:
        reads=run_reads("ensemble"),
        runs=RUN_DIRS,
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    log:
        RESULTS / "logs" / "teacher.log",
    conda:
        "../../envs/facelm.yaml"
    shell:
        "{FACELM} ensemble --config {RUN_CONFIG_FILE} --runs {params.runs} --teacher --out {output} 2> {log}"


rule submission:
    """Predict the test crops -> solution.txt + solution.zip (validated); score the val crops too."""
    input:
        model=ENSEMBLE,
        test=DATASETS[SPLIT_KEYS["test"]],
        checks=check_reports([SPLIT_KEYS["test"], SPLIT_KEYS["val"]]),
    output:
        txt=layout.submission_file(CFG, "solution"),
        zip=SUBMISSION_ZIP,
        val_score=layout.submission_file(CFG, "val_score"),
    params:
        val=DATASETS[SPLIT_KEYS["val"]],
    threads: 4
    resources:
        mem_mb=8000,
        runtime=120,
    log:
        RESULTS / "logs" / "submission.log",
    conda:
        "../../envs/facelm.yaml"
    shell:
        "OMP_NUM_THREADS={threads} {FACELM} submit --model {input.model} --test {input.test}"
        " --val {params.val} --out-dir {SUBMISSION_DIR} 2> {log}"


rule model_card:
    """MODEL_CARD.md beside the submission: NME by yaw and region, float32 size, ORT ms per face."""
    input:
        model=ENSEMBLE,
        checks=check_reports([SPLIT_KEYS["val"]]),
    output:
        layout.submission_file(CFG, "model_card"),
    params:
        val=DATASETS[SPLIT_KEYS["val"]],
        face_model=FACE_MODEL_ARG,
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    log:
        RESULTS / "logs" / "model_card.log",
    conda:
        "../../envs/facelm.yaml"
    shell:
        "{FACELM} model-card {input.model} {params.val} --out {output} {params.face_model} 2> {log}"


rule report:
    """results/report.md: per model x fold table, tuning history, ensemble, CED curves, faces."""
    input:
        ENSEMBLE,
        layout.submission_file(CFG, "val_score"),
        RUN_CONFIG_INPUT,
    output:
        REPORT,
    params:
        reads=run_reads("report"),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    log:
        RESULTS / "logs" / "report.log",
    conda:
        "../../envs/facelm.yaml"
    shell:
        "{FACELM} report --config {RUN_CONFIG_FILE} --out {output} 2> {log}"


rule ablation:
    """Every surveyed method, same short schedule and data -> results/ablation.md."""
    input:
        check_reports([layout.dataset_key(CFG.ablation.train_set), SPLIT_KEYS["val"]]),
    output:
        layout.ablation_report(CFG),
    params:
        reads=read_values("ablation", config),
    threads: COMPUTE.threads
    resources:
        **TRAINING,
    log:
        RESULTS / "logs" / "ablation.log",
    conda:
        "../../envs/facelm.yaml"
    shell:
        "{FACELM} ablation --config {CONFIG_FILE} --out {output} --threads {threads} 2> {log}"
