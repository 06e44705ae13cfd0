"""Throughput of `facelm predict` paths on CPU: photos/s for a folder of photos, frames/s for a 640x480 clip.

    python benchmarks/throughput.py --model model.pt [--threads 2]

Photos: every image of ``--photos`` (default ../shared/data/300w_raw_sample, 20 raw AFW photos of
any size) through :func:`facelm.inference.faces.predict_faces` in one batch (detection on the
batch, all faces in one prediction), images read from disk included. Video: a 640x480 clip of
``--frames`` frames (an aflw_val crop pasted on grey, moving, with sensor noise) through
:func:`facelm.inference.video.predict_video` (decode, track, smooth, CSV and overlay video written).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import torch

from facelm.data.folder import imread_rgb, list_images
from facelm.inference.detectors.registry import DETECTORS, create_detector
from facelm.inference.faces import predict_faces
from facelm.inference.landmarker import Landmarker
from facelm.inference.loading import load_predictor
from facelm.inference.video import VideoOptions, predict_video

DATA = Path(os.environ.get("FACELM_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "inference"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--detector", default="yunet", choices=sorted(DETECTORS))
    parser.add_argument("--photos", default=str(DATA / "300w_raw_sample"))
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    predictor, detector = load_predictor(args.model), create_detector(args.detector)

    paths = [Path(args.photos) / name for name in list_images(args.photos)]
    predict_faces(predictor, [imread_rgb(paths[0])], detector=detector)  # warm-up
    start = time.perf_counter()
    results = predict_faces(predictor, [imread_rgb(p) for p in paths], detector=detector)
    seconds = time.perf_counter() - start
    faces = sum(len(r.boxes) for r in results)
    print(f"photos: {len(paths)} images ({faces} faces) of {args.photos}: {len(paths) / seconds:.1f} images/s, "
          f"{faces / seconds:.1f} faces/s ({args.detector}, {args.threads} threads)")

    from test_video import make_clip  # the test's clip maker: a crop pasted on grey, moving

    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        make_clip(clip, imread_rgb(DATA / "aflw_val" / "image00013.jpg"), args.frames)
        for overlay in (True, False):
            start = time.perf_counter()
            landmarker = Landmarker(args.model, detector, threads=args.threads)
            frames = predict_video(landmarker, clip, Path(tmp) / "out", VideoOptions(overlay=overlay))
            seconds = time.perf_counter() - start
            print(f"video 640x480: {frames} frames, {frames / seconds:.1f} frames/s "
                  f"({'with' if overlay else 'without'} the overlay video, {args.threads} threads)")


if __name__ == "__main__":
    main()
