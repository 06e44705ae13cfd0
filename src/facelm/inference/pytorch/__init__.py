"""The torch-only side of inference: the PyTorch predictor of a ``model.pt`` and the ONNX export of a
model or ensemble (``facelm export``). They need the training install; the runtime beside them
(:mod:`facelm.inference.loading` with ``.onnx`` files, :class:`facelm.Landmarker`, ``facelm predict``)
never imports them unless a ``.pt`` or ensemble ``.json`` is loaded.
"""
