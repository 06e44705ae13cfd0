"""Inference: predictors (PyTorch, ONNX, ensembles), export, face detection, ``facelm predict``.

Depends on ``facelm.data`` and ``facelm.models``; never on ``facelm.training`` or
``facelm.challenge``.
"""
