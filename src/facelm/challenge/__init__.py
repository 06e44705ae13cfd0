"""Challenge stages of the DAG: evaluation, ensembling, the submission and its checks, scoring,
the report and the ablation table. The top of the dependency stack (only ``facelm.cli`` is above).
"""
