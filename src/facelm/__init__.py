"""facelm: light-weight 68-point facial landmark predictors, trained and shipped by a Snakemake pipeline.

    import cv2, facelm
    faces = facelm.Landmarker()(cv2.imread("photo.jpg"))

    for frame in facelm.Landmarker().track(cv2.VideoCapture(0)):   # a webcam: faces tracked, with ids
        print(frame.index, [(face.id, face.landmarks[30]) for face in frame.faces])

``Landmarker`` and ``Face`` (:mod:`facelm.inference.landmarker`), ``TrackedFace`` and ``TrackedFrame``
(:mod:`facelm.inference.video`) are imported on first use, so ``import facelm`` stays light and
never imports torch.
"""

__version__ = "0.1.0"
__all__ = ["COORDINATES", "Face", "Landmarker", "TrackedFace", "TrackedFrame", "__version__"]


def __getattr__(name: str):
    if name in ("COORDINATES", "Face", "Landmarker"):
        from facelm.inference import landmarker

        return getattr(landmarker, name)
    if name in ("TrackedFace", "TrackedFrame"):
        from facelm.inference import video

        return getattr(video, name)
    raise AttributeError(f"module 'facelm' has no attribute {name!r}")
