# K-fold training: one job per (model, fold), each on the cached, checked data.


rule folds:
    """Seeded KFold over the concatenated train sets -> folds.csv (row, set, name, fold)."""
    input:
        check_reports(TRAIN_KEYS),
    output:
        layout.folds_csv(config),
    params:
        k=config["folds"]["k"],
        seed=config["seed"],
        train_sets=config["train_sets"],
    conda:
        "../../envs/facelm.yaml"
    shell:
        "{FACELM} folds --config {CONFIG_FILE} --out {output}"


def train_inputs(wc):
    entry = MODEL_IDS[wc.model_id]
    inputs = {
        "folds": layout.folds_csv(config),
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
        model=RESULTS / "runs" / "{model_id}" / "fold{fold}" / "model.pt",
        metrics=RESULTS / "runs" / "{model_id}" / "fold{fold}" / "metrics.json",
        oof=RESULTS / "runs" / "{model_id}" / "fold{fold}" / "oof_pred.npy",
        val=RESULTS / "runs" / "{model_id}" / "fold{fold}" / "val_pred.npy",
    wildcard_constraints:
        fold=r"\d+",
    params:
        entry=lambda wc: MODEL_IDS[wc.model_id],
        train=config["train"],
        augment=config["augment"],
        preprocess=config["preprocess"],
        best=f"--params {BEST_PARAMS}" if TUNE else "",
        out=lambda wc, output: Path(output.model).parent,
    threads: workflow.cores
    log:
        RESULTS / "logs" / "train" / "{model_id}_fold{fold}.log",
    conda:
        "../../envs/facelm.yaml"
    shell:
        "{FACELM} train --config {CONFIG_FILE} --model {wildcards.model_id} --fold {wildcards.fold}"
        " --out {params.out} {params.best} 2> {log}"


RUN_DIRS = [layout.run_dir(config, mid, fold) for mid in MODEL_IDS for fold in FOLDS]
