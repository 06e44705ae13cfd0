"""Face detectors: the registry (``facelm predict --detector NAME``, :mod:`.registry`), the
``Detections`` contract every backend returns (:mod:`.detection`), one module per backend
(``yunet``, ``mtcnn``, ``centerface``, ``haar``) and MTCNN's weights (package data, their licence
in ``LICENSE.txt``). Runtime only: OpenCV and onnxruntime, never torch.
"""
