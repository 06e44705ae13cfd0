"""``facelm predict``: landmarks for photos, face crops and videos.

    facelm predict photo.jpg                                  # the shipped model, faces detected
    facelm predict photos/ --out predictions/ --no-overlay    # a folder, JSON only
    facelm predict ../shared/data/aflw_test/ --crops          # challenge-style face crops
    facelm predict group.jpg --box 120,80,260,230             # bring your own face box
    facelm predict photos/ --boxes boxes.csv                  # one box per line: NAME,x0,y0,x1,y1
    facelm predict clip.mp4 --out tracked/                    # per-frame CSV + overlay video

``--model`` defaults to the shipped pretrained model (:mod:`facelm.inference.shipped`), run by
onnxruntime on ``--threads`` threads (default 1: the fastest per process on a shared machine).
Every image goes through the face detector (``--detector``) or the given boxes, and each face is
cropped the way the training crops were framed (:class:`facelm.inference.landmarker.Landmarker`).
A square image whose one face sits exactly where a challenge crop puts it is predicted as that
crop (no re-cropping); ``--crops`` / ``--detect`` force either path. Images are read and predicted
in chunks of ``--batch-size``.

Every input image gets ``<out>/<name>.json`` (``faces: []`` when none is found) and, unless
``--no-overlay``, an overlay with the points drawn (``--lines``: the contours; :mod:`facelm.inference.drawing`),
``<out>/<name>.jpg`` (``.png`` for a PNG input), both written atomically; names come from
:mod:`facelm.inference.inputs` (unique, never an input). Videos (:data:`VIDEO_SUFFIXES`) are
tracked frame to frame by :meth:`Landmarker.track` (:mod:`facelm.inference.video`), with the same
model, detector, ``--min-score`` and ``--hflip-tta``; ``--box``, ``--boxes`` and ``--crops`` are for
photos and refused for videos. The
JSON holds the model id and the coordinate convention (:data:`~facelm.inference.landmarker.COORDINATES`)
and coordinates rounded to 0.01 px. An unreadable image, a missing input or an empty folder is
reported on one stderr line and the rest still run; the summary counts images with faces, with
no face and errors, and the exit status is 2 only if there were errors.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from facelm.atomic import atomic_open, write_json
from facelm.data.folder import imread_rgb
from facelm.data.limits import positive_int
from facelm.errors import FacelmError
from facelm.inference.inputs import PHOTO_SUFFIXES, VIDEO_SUFFIXES
from facelm.inference.detectors.detection import box_iou, square_boxes
from facelm.inference.drawing import draw_faces
from facelm.inference.landmarker import COORDINATES, Face, Landmarker, checked_boxes, crop_frames

MODES = ("auto", "crops", "detect")
#: a square image is taken as a challenge-style crop when its one detected face's expected landmark
#: box overlaps the crop's own (centred at CROP_CENTRE, CROP_BOX_FRACTION of the side) by this IoU
CROP_AGREEMENT = 0.6
#: without a terminal, progress is one stderr line every this many images
PROGRESS_EVERY = 50


def parse_box(text: str, source: str | os.PathLike = "--box") -> np.ndarray:
    """``x0,y0,x1,y1`` (commas or spaces) -> float32 (4,), or a FacelmError naming ``source``
    (the same check as :func:`facelm.inference.landmarker.checked_boxes`)."""
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        raise FacelmError(f"expected a face box x0,y0,x1,y1 of numbers, got {text.strip()!r}", source) from None
    if len(numbers) != 4:
        raise FacelmError(f"expected a face box x0,y0,x1,y1 (4 numbers), got {text.strip()!r}", source)
    return checked_boxes(numbers, os.fspath(source))[0]


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


@dataclass(frozen=True)
class ImageOptions:
    mode: str = "auto"
    batch_size: int = 32
    overlay: bool = True
    lines: bool = False


@dataclass
class Summary:
    """What a run wrote: images with faces, images with none, error lines."""

    with_faces: int = 0
    faces: int = 0
    no_face: int = 0
    errors: list[str] = field(default_factory=list)


class Progress:
    """A tqdm bar on a terminal; otherwise one stderr line every :data:`PROGRESS_EVERY` images."""

    def __init__(self, total: int):
        from tqdm import tqdm

        self.total, self.done = total, 0
        self.bar = tqdm(total=total, desc="predict", unit="img") if sys.stderr.isatty() else None

    def update(self, n: int) -> None:
        before, self.done = self.done, self.done + n
        if self.bar is not None:
            self.bar.update(n)
        elif self.total >= PROGRESS_EVERY and (self.done // PROGRESS_EVERY > before // PROGRESS_EVERY or self.done == self.total):
            print(f"facelm predict: {self.done}/{self.total} images", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def predict_paths(landmarker: Landmarker, paths: list[Path], out: Path, names: list[str] | None = None,
                  options: ImageOptions = ImageOptions(), boxes: dict[str, np.ndarray] | np.ndarray | None = None) -> Summary:
    """Predict every image and write its JSON (+ overlay) as ``out/<name>``; ``names`` default to the stems.

    ``boxes``: one (4,) box for every image, or file name -> (K, 4) boxes (images without an entry fail);
    photos then skip the detector.
    """
    if options.mode not in MODES:
        raise FacelmError(f"unknown mode {options.mode!r} (expected one of {', '.join(MODES)})")
    names = [p.stem for p in paths] if names is None else names
    summary, progress = Summary(), Progress(len(paths))
    try:
        for start in range(0, len(paths), options.batch_size):
            loaded = []
            for path, name in zip(paths[start : start + options.batch_size], names[start : start + options.batch_size]):
                try:
                    loaded.append((path, name, imread_rgb(path)))
                except FacelmError as err:
                    summary.errors.append(str(err))
            for (path, name, image), (how, faces) in zip(loaded, _predict_chunk(landmarker, loaded, options, boxes, summary)):
                if how is not None:
                    _write(out, name, path, image, how, faces, landmarker.model_id, options)
                    summary.with_faces += bool(faces)
                    summary.no_face += not faces
                    summary.faces += len(faces)
            progress.update(len(paths[start : start + options.batch_size]))
    finally:
        progress.close()
    return summary


def _boxes_for(path: Path, boxes) -> np.ndarray | None:
    if isinstance(boxes, dict):
        return boxes.get(path.name)
    return np.asarray(boxes, np.float32).reshape(1, 4)


def _predict_chunk(landmarker: Landmarker, loaded: list[tuple[Path, str, np.ndarray]], options: ImageOptions, boxes,
                   summary: Summary) -> list[tuple[str | None, list[Face]]]:
    """(how each image was read: crop | detected | boxes | None when it failed, its faces), per loaded image."""
    images = [image for _, _, image in loaded]
    if options.mode == "crops":
        square = [image.shape[0] == image.shape[1] for image in images]
        summary.errors += [f"{path}: --crops takes square face crops, this image is {image.shape[1]}x{image.shape[0]}"
                           for (path, _, image), ok in zip(loaded, square) if not ok]
        faces = iter(landmarker.crops([image for image, ok in zip(images, square) if ok], color="rgb"))
        return [("crop", [next(faces)]) if ok else (None, []) for ok in square]
    if boxes is not None:
        given = [_boxes_for(path, boxes) for path, _, _ in loaded]
        summary.errors += [f"{path}: no box for {path.name} in the boxes file" for (path, _, _), b in zip(loaded, given) if b is None]
        kept = [i for i, b in enumerate(given) if b is not None]
        faces = landmarker.batch([images[i] for i in kept], color="rgb", boxes=[given[i] for i in kept])
        results: list[tuple[str | None, list[Face]]] = [(None, [])] * len(loaded)
        for i, found in zip(kept, faces):
            results[i] = ("boxes", found)
        return results
    detections = landmarker.detector.detect_batch(images)
    as_crop = [options.mode == "auto" and _framed_like_a_crop(landmarker, image, found)
               for image, found in zip(images, detections)]
    crops = iter(landmarker.crops([image for image, crop in zip(images, as_crop) if crop], color="rgb"))
    photos = iter(landmarker.faces_of_detections([im for im, crop in zip(images, as_crop) if not crop],
                                                 [d for d, crop in zip(detections, as_crop) if not crop]))
    return [("crop", [next(crops)]) if crop else ("detected", next(photos)) for crop in as_crop]


def _framed_like_a_crop(landmarker: Landmarker, image: np.ndarray, found) -> bool:
    """A square image with exactly one face, where a challenge crop puts it (:data:`CROP_AGREEMENT`)."""
    h, w = image.shape[:2]
    if h != w or len(found.boxes) != 1:
        return False
    centres, sizes, _ = landmarker.detector.calibration.landmark_frames(found.boxes, found.keypoints)
    expected = crop_frames(np.array([w]))
    return float(box_iou(square_boxes(*expected[:2]), square_boxes(centres, sizes))[0, 0]) >= CROP_AGREEMENT


#: JPEG quality of overlays (a 2.4 MP photo's overlay is then a few hundred kB, not 3.6 MB of PNG)
JPEG_QUALITY = 90


def overlay_suffix(path: Path) -> str:
    """An input photo's overlay format: PNG for a PNG (lossless stays lossless), JPEG for the rest."""
    return ".png" if path.suffix.lower() == ".png" else ".jpg"


def _write(out: Path, name: str, path: Path, image: np.ndarray, how: str, faces: list[Face], model: str,
           options: ImageOptions) -> None:
    h, w = image.shape[:2]
    record = {"image": str(path), "width": w, "height": h, "model": model, "coordinates": COORDINATES,
              "read_as": how, "faces": [face.to_dict() for face in faces]}
    write_json(out / f"{name}.json", record)
    if options.overlay:
        suffix = overlay_suffix(path)
        drawn = cv2.cvtColor(draw_faces(image, faces, how == "crop", options.lines), cv2.COLOR_RGB2BGR)
        ok, encoded = cv2.imencode(suffix, drawn, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if suffix == ".jpg" else [])
        if not ok:
            raise FacelmError(f"OpenCV cannot encode the overlay as {suffix}", out / f"{name}{suffix}")
        with atomic_open(out / f"{name}{suffix}", "wb") as handle:
            handle.write(encoded.tobytes())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from facelm.inference.detectors.detection import DEFAULT_MIN_SCORE
    from facelm.inference.detectors.registry import DEFAULT_DETECTOR, DETECTORS
    from facelm.inference.onnx_predictor import PROVIDERS

    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help=f"images ({', '.join(PHOTO_SUFFIXES)}), folders of images, or videos ({', '.join(VIDEO_SUFFIXES)})")
    parser.add_argument("--model", help="a shipped model name (see `facelm models --pretrained`), an exported .onnx, "
                                        "model.pt or an ensemble .json (default: the shipped default model)")
    parser.add_argument("--out", default="predictions", help="output folder, not inside an input folder (default: predictions)")
    parser.add_argument("--threads", type=positive_int, default=1, help="CPU threads of the model (default: 1)")
    parser.add_argument("--device", choices=sorted(PROVIDERS), help="cpu or cuda (default: cpu for ONNX models)")
    parser.add_argument("--detector", default=DEFAULT_DETECTOR, choices=sorted(DETECTORS),
                        help=f"face detector for photos and videos (default: {DEFAULT_DETECTOR})")
    given = parser.add_mutually_exclusive_group()
    given.add_argument("--box", metavar="X0,Y0,X1,Y1", help="your own face box for every image, as the detector gives it (a face's \"box\" in the JSON)")
    given.add_argument("--boxes", metavar="FILE", help="face boxes per image file name: lines NAME,x0,y0,x1,y1")
    parser.add_argument("--min-score", type=float, default=DEFAULT_MIN_SCORE,
                        help=f"drop detections scoring below this, 0..1 (default: {DEFAULT_MIN_SCORE}: "
                             "drops hands and ears the detector takes for faces)")
    parser.add_argument("--batch-size", type=positive_int, default=32, help="images per chunk and faces per forward pass (default: 32)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--crops", dest="mode", action="store_const", const="crops",
                      help="treat every image as a challenge-style face crop (no detector)")
    mode.add_argument("--detect", dest="mode", action="store_const", const="detect",
                      help="crop every face the detector finds, also in images framed like a challenge crop")
    parser.add_argument("--hflip-tta", action="store_const", const=True, default=None,
                        help="average with the mirrored prediction (default: the model's own setting)")
    parser.add_argument("--no-overlay", dest="overlay", action="store_false",
                        help="write no overlay (photos: no JPEG/PNG; videos: no overlay video)")
    parser.add_argument("--lines", action="store_true", help="draw the face contours in the overlays, not only the points")
    parser.set_defaults(mode="auto")
    from facelm.inference.video import add_video_arguments
    add_video_arguments(parser.add_argument_group("videos"))


def refuse_photo_options(args: argparse.Namespace, videos: list[Path]) -> None:
    """Options that only photos take (given boxes, ready-made crops) refused for a run with videos, in one line."""
    given = [flag for flag, on in (("--box", args.box), ("--boxes", args.boxes), ("--crops", args.mode == "crops")) if on]
    if given and videos:
        raise FacelmError(f"{' and '.join(given)} apply to photos; videos are tracked from the detector "
                          f"({videos[0].name}): run the videos without {given[0]}")


def main(args: argparse.Namespace) -> int:
    from facelm.inference.inputs import check_out_folder, expand_inputs, output_names
    from facelm.inference.video import predict_video, video_options

    boxes = parse_box(args.box) if args.box else read_boxes_file(args.boxes) if args.boxes else None
    options = video_options(args)
    items, missing, skipped = expand_inputs(args.inputs)
    if not items:
        raise FacelmError(f"nothing to predict: {'; '.join(missing)}")
    out, names = Path(args.out), output_names(items)
    is_video = [item.path.suffix.lower() in VIDEO_SUFFIXES for item in items]
    refuse_photo_options(args, [item.path for item, video in zip(items, is_video) if video])
    suffixes = [(".landmarks.csv", ".overlay.mp4") if video else (".json", overlay_suffix(item.path))
                for item, video in zip(items, is_video)]
    check_out_folder(out, items, [out / f"{name}{s}" for name, pair in zip(names, suffixes) for s in pair])
    landmarker = Landmarker(args.model, args.detector, args.threads, args.device, args.hflip_tta, args.min_score)
    images = [(item.path, name) for item, name, video in zip(items, names, is_video) if not video]
    summary = predict_paths(landmarker, [p for p, _ in images], out, [n for _, n in images],
                            ImageOptions(args.mode, args.batch_size, args.overlay, args.lines), boxes)
    videos = 0
    for item, name, video in zip(items, names, is_video):
        if video:
            try:
                predict_video(landmarker, item.path, out, options, name=name, lines=args.lines)
                videos += 1
            except FacelmError as err:
                summary.errors.append(str(err))
    errors = missing + summary.errors
    for line in errors:
        print(f"facelm predict: {line}", file=sys.stderr)
    others = f"; skipped {len(skipped)} files in the folders that are not images or videos ({skipped[0].name}, ...)" if skipped else ""
    print(f"predicted {summary.with_faces + summary.no_face} images ({summary.faces} faces in {summary.with_faces}, "
          f"no face in {summary.no_face}) and {videos} videos with {landmarker.model_id}; {len(errors)} errors{others} -> {os.fspath(out)}")
    return 2 if errors else 0
