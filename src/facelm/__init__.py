"""facelm: light-weight 68-point facial landmark predictors, trained and shipped by a Snakemake pipeline.

    import cv2, facelm
    faces = facelm.Landmarker()(cv2.imread("photo.jpg"))

``Landmarker`` and ``Face`` (:mod:`facelm.inference.landmarker`) are imported on first use, so
``import facelm`` stays light and never imports torch.
"""

__version__ = "0.1.0"
__all__ = ["COORDINATES", "Face", "Landmarker", "__version__"]


def __getattr__(name: str):
    if name in ("COORDINATES", "Face", "Landmarker"):
        from facelm.inference import landmarker

        return getattr(landmarker, name)
    raise AttributeError(f"module 'facelm' has no attribute {name!r}")
