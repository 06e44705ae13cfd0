"""The release step: a trained model turned into a shipped pretrained model in ``facelm/weights``
(``facelm ship``: the ONNX file with its card in the metadata, and the Markdown model card). Above the
challenge stage, whose model card it writes; read back by :mod:`facelm.inference.shipped`.
"""
