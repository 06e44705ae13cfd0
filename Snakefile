# facelm: the challenge pipeline as a DAG.
#   snakemake --cores 8            # everything: checks, caches, folds, tuning, training, ensemble, submission, report
#   snakemake submission           # the same, up to submissions/<run_name>/solution.zip
#   snakemake distill              # with distill.enabled: the student of the teacher ensemble
#   snakemake ablation             # every surveyed method, same short schedule -> results/ablation.md
# Rules are thin: each calls one `facelm` command (see `facelm --help`), so every step also
# runs by hand. The config is validated against the schema before any rule runs.
from snakemake.utils import min_version

min_version("9.0")

configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/labels.smk"
include: "workflow/rules/training.smk"
include: "workflow/rules/challenge.smk"


rule all:
    input:
        SUBMISSION_ZIP,
        layout.submission_file(CFG, "model_card"),
        REPORT,
        [layout.run_file(STUDENT_DIR, "metrics")] if DISTILL else [],
    default_target: True
