"""Inference: predictors (ONNX, ensembles; PyTorch in ``pytorch/``), the shipped models, face
detection (``detectors/``), ``facelm.Landmarker``, ``facelm predict`` and video tracking.

The modules here and in ``detectors/`` are the runtime of the inference-only install (onnxruntime
and OpenCV; torch only inside a function that loads a ``.pt`` or lists the architectures);
``pytorch/`` holds the torch-only code (the PyTorch predictor, ONNX export).
Depends on ``facelm.data`` and ``facelm.models``; never on ``facelm.training``, ``facelm.challenge``
or ``facelm.release``.
"""
