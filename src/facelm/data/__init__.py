"""Data stages of the DAG: read, check, prepare, preprocess (gamma), cache, augment, load, split.

Depends only on the top-level helpers (``errors``, ``atomic``, ``landmarks68``, ``config``,
``layout``); nothing here imports models, training, inference or the challenge code.
"""
