"""``facelm predict``: landmarks for challenge crops or any photo, as JSON plus an overlay PNG.

    facelm predict ../shared/data/aflw_test/image00002.jpg photos/ --model face.onnx --out predictions/

A 384x384 image is taken to be a challenge crop and predicted directly; any other image goes
through the face detector (:mod:`facelm.inference.detect`): each face is cropped the way the training
crops were framed, predicted, and its points mapped back to the photo. ``--crops`` /
``--detect`` force either path. Images are read and predicted in chunks of ``--batch-size``
(all faces of a chunk in one batched call). For each image ``<out>/<stem>.json`` (faces: box,
score, 68 points in the image's pixel frame) and ``<out>/<stem>.png`` (points drawn) are
written atomically. An unreadable image (or one over the limits of :mod:`facelm.data.limits`), a
missing input, an empty folder or a photo without a face is reported on one stderr line and
the rest still run; the exit status is 2 if any input failed.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from facelm.atomic import atomic_open, write_json
from facelm.errors import FacelmError
from facelm.data.folder import IMAGE_SUFFIXES, imread_rgb, list_images
from facelm.data.limits import positive_int
from facelm.landmarks68 import CHALLENGE_SIZE

MODES = ("auto", "crops", "detect")


@dataclass
class Job:
    """One input image on its way through the chunk: where it goes and what was found."""

    path: Path
    image: np.ndarray
    detected: bool
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray | None = None
    transforms: np.ndarray | None = None  # crop -> image, (K, 2, 3), detected faces only


def expand_inputs(inputs: list[str]) -> tuple[list[Path], list[str]]:
    """Files and folders -> (image paths in the given order, one error line per input that is neither)."""
    paths, errors = [], []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            names = list_images(path)
            paths += [path / name for name in names]
            if not names:
                errors.append(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in the folder")
        elif path.is_file():
            paths.append(path)
        else:
            errors.append(f"{path}: no such file or folder")
    return paths, errors


def predict_paths(predictor, paths: list[Path], out: Path, mode: str = "auto", detector=None,
                  batch_size: int = 32, hflip_tta: bool | None = None) -> list[str]:
    """Predict every image, write JSON + overlay per image; returns one error line per failed image."""
    if mode not in MODES:
        raise FacelmError(f"unknown mode {mode!r} (expected one of {', '.join(MODES)})")
    errors: list[str] = []
    with tqdm(total=len(paths), desc="predict", unit="img", disable=None) as bar:
        for start in range(0, len(paths), batch_size):
            chunk = paths[start : start + batch_size]
            jobs = []
            for path in chunk:
                try:
                    image = imread_rgb(path)
                except FacelmError as err:
                    errors.append(str(err))
                    continue
                is_crop = image.shape[:2] == (CHALLENGE_SIZE, CHALLENGE_SIZE)
                jobs.append(Job(path, image, detected=mode == "detect" or (mode == "auto" and not is_crop)))
            errors += _run_chunk(predictor, jobs, out, detector, batch_size, hflip_tta)
            bar.update(len(chunk))
    return errors


def _run_chunk(predictor, jobs: list[Job], out: Path, detector, batch_size: int, hflip_tta: bool | None) -> list[str]:
    from facelm.inference.detect import crop_faces, to_image

    errors = []
    crops = [job.image for job in jobs if not job.detected]  # whole images; the predictor resizes them
    for job in jobs:
        if not job.detected:
            continue
        job.boxes, job.scores = detector.detect(job.image)
        if len(job.boxes) == 0:
            errors.append(f"{job.path}: no face found")
            continue
        faces, job.transforms = crop_faces(job.image, job.boxes, CHALLENGE_SIZE, detector.calibration)
        crops += list(faces)
    kwargs = {} if hflip_tta is None else {"hflip_tta": hflip_tta}
    points = predictor.predict(crops, batch_size, **kwargs) if crops else np.zeros((0, 68, 2), np.float32)
    # undetected images first (in order), then every detected face (in order): split the batch back
    cursor = 0
    for job in (j for j in jobs if not j.detected):
        h, w = job.image.shape[:2]
        _write(out, job, [{"box": [0.0, 0.0, float(w), float(h)], "score": None, "landmarks": points[cursor]}])
        cursor += 1
    for job in (j for j in jobs if j.detected and len(j.boxes)):
        face_points = to_image(points[cursor : cursor + len(job.boxes)], job.transforms)
        cursor += len(job.boxes)
        _write(out, job, [{"box": box, "score": float(score), "landmarks": pts}
                          for box, score, pts in zip(job.boxes.tolist(), job.scores, face_points)])
    return errors


def _write(out: Path, job: Job, faces: list[dict]) -> None:
    h, w = job.image.shape[:2]
    record = {"image": str(job.path), "width": w, "height": h, "detected": job.detected,
              "faces": [{**face, "landmarks": np.round(face["landmarks"], 3).tolist()} for face in faces]}
    write_json(out / f"{job.path.stem}.json", record)
    ok, png = cv2.imencode(".png", cv2.cvtColor(draw_faces(job.image, faces), cv2.COLOR_RGB2BGR))
    with atomic_open(out / f"{job.path.stem}.png", "wb") as handle:
        handle.write(png.tobytes())


def draw_faces(image: np.ndarray, faces: list[dict]) -> np.ndarray:
    """The image with each face's box (detected faces) and 68 points drawn."""
    canvas = image.copy()
    radius = max(1, round(max(image.shape[:2]) / 300))
    for face in faces:
        if face["score"] is not None:
            x0, y0, x1, y1 = (round(v) for v in face["box"])
            cv2.rectangle(canvas, (x0, y0), (x1, y1), (255, 200, 0), radius)
        for x, y in np.asarray(face["landmarks"]):
            # continuous coordinates: pixel i covers [i, i+1), so the point x lies in pixel floor(x)
            cv2.circle(canvas, (int(np.floor(x)), int(np.floor(y))), radius, (0, 255, 0), -1, cv2.LINE_AA)
    return canvas


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help=f"images ({', '.join(IMAGE_SUFFIXES)}) or folders")
    parser.add_argument("--model", required=True, help="model.pt, an exported .onnx, or an ensemble .json")
    parser.add_argument("--out", default="predictions", help="output folder (default: predictions)")
    parser.add_argument("--detector", default="haar", help="face detector for photos (default: haar)")
    parser.add_argument("--batch-size", type=positive_int, default=32, help="images per chunk and faces per forward pass")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--crops", dest="mode", action="store_const", const="crops",
                      help="treat every image as a challenge-style face crop (no detector)")
    mode.add_argument("--detect", dest="mode", action="store_const", const="detect",
                      help="run the detector on every image, 384x384 ones included")
    parser.add_argument("--hflip-tta", action="store_const", const=True, default=None,
                        help="average with the mirrored prediction (default: the model's own setting)")
    parser.set_defaults(mode="auto")


def main(args: argparse.Namespace) -> int:
    from facelm.inference.detect import create_detector
    from facelm.inference.loading import load_predictor

    predictor = load_predictor(args.model)
    detector = None if args.mode == "crops" else create_detector(args.detector)
    paths, missing = expand_inputs(args.inputs)
    failed = predict_paths(predictor, paths, Path(args.out), args.mode, detector, args.batch_size, args.hflip_tta)
    for line in missing + failed:
        print(f"facelm predict: {line}", file=sys.stderr)
    print(f"predicted {len(paths) - len(failed)} of {len(paths)} images -> {os.fspath(args.out)}")
    return 2 if missing or failed else 0
