"""Training stages of the DAG: the trainer (one model, one fold), tuning parameters and Optuna.

Depends on ``facelm.data`` and ``facelm.models``; never on ``facelm.inference`` or
``facelm.challenge``.
"""
