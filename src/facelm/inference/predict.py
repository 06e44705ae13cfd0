"""``facelm predict``: landmarks for challenge crops, photos and videos.

    facelm predict ../shared/data/aflw_test/image00002.jpg photos/ --model face.onnx --out predictions/
    facelm predict group.jpg --box 120,80,260,230 --model face.onnx      # bring your own face box
    facelm predict photos/ --boxes boxes.csv --model face.onnx            # one box per line: NAME,x0,y0,x1,y1
    facelm predict clip.mp4 --model face.onnx --out tracked/              # per-frame CSV + overlay video

A 384x384 image is taken to be a challenge crop and predicted directly; any other image goes
through the face detector (``--detector``, :mod:`facelm.inference.detect`; default yunet) or
the given boxes: each face is cropped the way the training crops were framed, predicted, and its
points mapped back to the photo (:mod:`facelm.inference.faces`). ``--crops`` / ``--detect``
force either path. Images are read and predicted in chunks of ``--batch-size`` (detection on the
whole chunk, all faces of a chunk in one batched call). For each image ``<out>/<stem>.json``
(faces: box, score, 68 points in the image's pixel frame) and ``<out>/<stem>.png`` (points drawn)
are written atomically. Videos (:data:`VIDEO_SUFFIXES`) are tracked frame to frame
(:mod:`facelm.inference.video`). An unreadable image (or one over the limits of :mod:`facelm.data.limits`), a missing input, an
empty folder or a photo without a face is reported on one stderr line and the rest still run;
the exit status is 2 if any input failed.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from facelm.atomic import atomic_open, write_json
from facelm.data.folder import IMAGE_SUFFIXES, imread_rgb, list_images
from facelm.data.limits import positive_int
from facelm.errors import FacelmError
from facelm.landmarks68 import CHALLENGE_SIZE

MODES = ("auto", "crops", "detect")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")


def expand_inputs(inputs: list[str]) -> tuple[list[Path], list[str]]:
    """Files and folders -> (image and video paths in the given order, one error line per input that is neither)."""
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


def parse_box(text: str, source: str | os.PathLike = "--box") -> np.ndarray:
    """``x0,y0,x1,y1`` (commas or spaces) -> float32 (4,), or a FacelmError naming ``source``."""
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    try:
        box = np.array([float(p) for p in parts], np.float32)
    except ValueError:
        box = np.zeros(0, np.float32)
    if box.shape != (4,) or not np.isfinite(box).all() or box[2] <= box[0] or box[3] <= box[1]:
        raise FacelmError(f"expected a face box x0,y0,x1,y1 with x1 > x0 and y1 > y0, got {text.strip()!r}", source)
    return box


def read_boxes_file(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A boxes file -> image file name -> boxes (K, 4) float32.

    One face per line, ``NAME,x0,y0,x1,y1`` (commas or whitespace); a name may repeat for several
    faces; blank lines and lines starting with ``#`` are skipped. NAME is the image's file name.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise FacelmError(f"cannot read the boxes file ({err})", path) from None
    boxes: dict[str, list[np.ndarray]] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, rest = line.strip().replace(",", " ", 1).partition(" ")
        boxes.setdefault(Path(name).name, []).append(parse_box(rest, f"{path}:{number}"))
    if not boxes:
        raise FacelmError("the boxes file lists no box", path)
    return {name: np.stack(found) for name, found in boxes.items()}


def predict_paths(predictor, paths: list[Path], out: Path, mode: str = "auto", detector=None,
                  batch_size: int = 32, hflip_tta: bool | None = None,
                  boxes: dict[str, np.ndarray] | np.ndarray | None = None) -> list[str]:
    """Predict every image, write JSON + overlay per image; returns one error line per failed image.

    ``boxes``: one (4,) box for every image, or file name -> (K, 4) boxes (images without an entry fail);
    photos then skip the detector.
    """
    if mode not in MODES:
        raise FacelmError(f"unknown mode {mode!r} (expected one of {', '.join(MODES)})")
    errors: list[str] = []
    with tqdm(total=len(paths), desc="predict", unit="img", disable=None) as bar:
        for start in range(0, len(paths), batch_size):
            chunk = paths[start : start + batch_size]
            loaded = []
            for path in chunk:
                try:
                    loaded.append((path, imread_rgb(path)))
                except FacelmError as err:
                    errors.append(str(err))
            errors += _run_chunk(predictor, loaded, out, mode, detector, batch_size, hflip_tta, boxes)
            bar.update(len(chunk))
    return errors


def _boxes_for(path: Path, boxes) -> np.ndarray | None:
    if isinstance(boxes, dict):
        return boxes.get(path.name)
    return np.asarray(boxes, np.float32).reshape(1, 4)


def _run_chunk(predictor, loaded: list[tuple[Path, np.ndarray]], out: Path, mode: str, detector, batch_size: int,
               hflip_tta: bool | None, boxes) -> list[str]:
    from facelm.inference.faces import predict_faces

    kwargs = {} if hflip_tta is None else {"hflip_tta": hflip_tta}
    errors = []
    as_crop = [mode == "crops" or (mode == "auto" and boxes is None and image.shape[:2] == (CHALLENGE_SIZE, CHALLENGE_SIZE))
               for _, image in loaded]
    direct = [item for item, crop in zip(loaded, as_crop) if crop]
    photos = [item for item, crop in zip(loaded, as_crop) if not crop]
    # crops: whole images, resized by the predictor in one batched call
    points = predictor.predict([image for _, image in direct], batch_size, **kwargs)
    for (path, image), pts in zip(direct, points):
        h, w = image.shape[:2]
        _write(out, path, image, False, [{"box": [0.0, 0.0, float(w), float(h)], "score": None, "landmarks": pts}])
    if not photos:
        return errors
    if boxes is not None:
        given = [(item, _boxes_for(item[0], boxes)) for item in photos]
        errors += [f"{path}: no box for {path.name} in the boxes file" for (path, _), b in given if b is None]
        photos = [item for item, b in given if b is not None]
        results = predict_faces(predictor, [image for _, image in photos], boxes=[b for _, b in given if b is not None],
                                batch_size=batch_size, **kwargs)
    else:
        results = predict_faces(predictor, [image for _, image in photos], detector=detector, batch_size=batch_size, **kwargs)
    for (path, image), faces in zip(photos, results):
        if len(faces.boxes) == 0:
            errors.append(f"{path}: no face found")
            continue
        scores = [None] * len(faces.boxes) if faces.scores is None else [float(s) for s in faces.scores]
        _write(out, path, image, True, [{"box": box, "score": score, "landmarks": pts}
                                        for box, score, pts in zip(faces.boxes.tolist(), scores, faces.landmarks)])
    return errors


def _write(out: Path, path: Path, image: np.ndarray, detected: bool, faces: list[dict]) -> None:
    h, w = image.shape[:2]
    record = {"image": str(path), "width": w, "height": h, "detected": detected,
              "faces": [{**face, "landmarks": np.round(face["landmarks"], 3).tolist()} for face in faces]}
    write_json(out / f"{path.stem}.json", record)
    ok, png = cv2.imencode(".png", cv2.cvtColor(draw_faces(image, faces), cv2.COLOR_RGB2BGR))
    with atomic_open(out / f"{path.stem}.png", "wb") as handle:
        handle.write(png.tobytes())


def draw_faces(image: np.ndarray, faces: list[dict]) -> np.ndarray:
    """The image with each face's box (detected or given faces) and 68 points drawn."""
    canvas = image.copy()
    radius = max(1, round(max(image.shape[:2]) / 300))
    for face in faces:
        x0, y0, x1, y1 = face["box"]
        if (x0, y0, x1, y1) != (0.0, 0.0, float(image.shape[1]), float(image.shape[0])):
            cv2.rectangle(canvas, (round(x0), round(y0)), (round(x1), round(y1)), (255, 200, 0), radius)
        for x, y in np.asarray(face["landmarks"]):
            # continuous coordinates: pixel i covers [i, i+1), so the point x lies in pixel floor(x)
            cv2.circle(canvas, (int(np.floor(x)), int(np.floor(y))), radius, (0, 255, 0), -1, cv2.LINE_AA)
    return canvas


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from facelm.inference.detect import DEFAULT_DETECTOR, DETECTORS

    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help=f"images ({', '.join(IMAGE_SUFFIXES)}), folders of images, or videos ({', '.join(VIDEO_SUFFIXES)})")
    parser.add_argument("--model", required=True, help="model.pt, an exported .onnx, or an ensemble .json")
    parser.add_argument("--out", default="predictions", help="output folder (default: predictions)")
    parser.add_argument("--detector", default=DEFAULT_DETECTOR, choices=sorted(DETECTORS),
                        help=f"face detector for photos and videos (default: {DEFAULT_DETECTOR})")
    given = parser.add_mutually_exclusive_group()
    given.add_argument("--box", metavar="X0,Y0,X1,Y1", help="your own face box (around brows, jaw and chin) for every image")
    given.add_argument("--boxes", metavar="FILE", help="face boxes per image file name: lines NAME,x0,y0,x1,y1")
    parser.add_argument("--batch-size", type=positive_int, default=32, help="images per chunk and faces per forward pass")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--crops", dest="mode", action="store_const", const="crops",
                      help="treat every image as a challenge-style face crop (no detector)")
    mode.add_argument("--detect", dest="mode", action="store_const", const="detect",
                      help="run the detector on every image, 384x384 ones included")
    parser.add_argument("--hflip-tta", action="store_const", const=True, default=None,
                        help="average with the mirrored prediction (default: the model's own setting)")
    parser.set_defaults(mode="auto")
    from facelm.inference.video import add_video_arguments
    add_video_arguments(parser.add_argument_group("videos"))


def main(args: argparse.Namespace) -> int:
    from facelm.inference.detect import create_detector
    from facelm.inference.loading import load_predictor
    from facelm.inference.video import predict_video, video_options

    boxes = parse_box(args.box) if args.box else read_boxes_file(args.boxes) if args.boxes else None
    options = video_options(args)
    predictor = load_predictor(args.model)
    paths, missing = expand_inputs(args.inputs)
    videos = [p for p in paths if p.suffix.lower() in VIDEO_SUFFIXES]
    images = [p for p in paths if p.suffix.lower() not in VIDEO_SUFFIXES]
    needs_detector = boxes is None and args.mode != "crops"
    detector = create_detector(args.detector) if needs_detector else None
    failed = predict_paths(predictor, images, Path(args.out), args.mode, detector, args.batch_size, args.hflip_tta, boxes)
    for video in videos:
        try:
            predict_video(predictor, video, Path(args.out), detector or create_detector(args.detector), options,
                          args.batch_size)
        except FacelmError as err:
            failed.append(str(err))
    for line in missing + failed:
        print(f"facelm predict: {line}", file=sys.stderr)
    print(f"predicted {len(paths) - len(failed)} of {len(paths)} inputs -> {os.fspath(args.out)}")
    return 2 if missing or failed else 0
