"""Challenge stages of the DAG: evaluation, ensembling, the submission and its checks, scoring,
the report and the ablation table. Only ``facelm.release`` (a model card -> a shipped model) and
``facelm.cli`` are above it in the dependency stack.
"""
