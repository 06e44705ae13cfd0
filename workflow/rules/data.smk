# Data stage (facelm.data): demo data (when asked for and missing), a check of every dataset,
# the gamma caches, the seeded K-fold split. A rule's `reads` param is what its verb reads
# (facelm.verbs.COMMANDS): changing one of those keys reruns it.

if CFG.make_demo_data:

    rule demo_data:
        """Self-made faces with exact labels, so a clone without the challenge data runs end to end."""
        output:
            [directory(layout.dataset_folder(CFG, entry)) for entry in CFG.splits.to_dict().values()],
        log:
            RESULTS / "logs" / "demo_data.log",
        conda:
            "../../envs/facelm.yaml"
        params:
            seed=config["seed"],
        threads: 1
        resources:
            mem_mb=2000,
            runtime=30,
        shell:
            "{FACELM} make-demo-data {config[data_dir]} --seed {params.seed} 2> {log}"


for _entry, _raw in CFG.prepare.items():

    rule:
        """A train set converted from a raw release folder (config `prepare`) to the challenge format; a
        near-duplicate of a val or test image stops it."""
        name:
            f"prepare_{layout.dataset_key(_entry)}"
        input:
            _raw,
        output:
            directory(layout.dataset_folder(CFG, _entry)),
        params:
            evaluation=" ".join(f"--eval {shlex.quote(str(d))}" for d in layout.evaluation_folders(CFG)),
        log:
            RESULTS / "logs" / f"prepare_{layout.dataset_key(_entry)}.log",
        threads: 4
        resources:
            mem_mb=4000,
            runtime=240,
        conda:
            "../../envs/facelm.yaml"
        shell:
            "{FACELM} prepare {input} {output} --workers {threads} {params.evaluation} 2> {log}"


rule check_data:
    """Every image and label of one dataset; with check.drop_bad, a clean index instead of failing."""
    input:
        lambda wc: DATASETS[wc.key],
    output:
        report=layout.check_report(CFG, "{key}"),
        index=layout.check_index(CFG, "{key}"),
    params:
        reads=read_values("check-data", config),
    threads: 4
    resources:
        mem_mb=4000,
        runtime=120,
    log:
        RESULTS / "logs" / "check_data" / "{key}.log",
    conda:
        "../../envs/facelm.yaml"
    shell:
        "{FACELM} check-data {input} --config {CONFIG_FILE} --workers {threads} --out {output.report} --index {output.index} 2> {log}"


rule gamma_cache:
    """Decode once, gamma LUT at full resolution, INTER_AREA resize: arrays read by rows."""
    input:
        folder=lambda wc: DATASETS[wc.key],
        index=layout.check_index(CFG, "{key}"),
    output:
        directory(layout.cache_dir(CFG, "{key}", "{gamma}", "{mode}", "{size}")),
    wildcard_constraints:
        gamma=r"[0-9.]+",
        mode="fixed|auto",
        size=r"\d+",
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
    log:
        RESULTS / "logs" / "cache" / "{key}_g{gamma}_{mode}_s{size}.log",
    conda:
        "../../envs/facelm.yaml"
    shell:
        "{FACELM} cache {input.folder} {output} --gamma {wildcards.gamma} --gamma-mode {wildcards.mode}"
        " --size {wildcards.size} --index {input.index} --workers {threads} 2> {log}"


rule folds:
    """Seeded KFold over the concatenated train sets -> folds.csv (row, set, name, fold)."""
    input:
        check_reports(TRAIN_KEYS),
    output:
        layout.folds_csv(CFG),
    params:
        reads=read_values("folds", config),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/facelm.yaml"
    shell:
        "{FACELM} folds --config {CONFIG_FILE} --out {output}"
