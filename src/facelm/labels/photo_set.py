"""A folder of unlabelled photos -> a challenge-format training set, labelled by a teacher.

    facelm photo-set SRC OUT --teacher 3ddfa_v2:../shared/models/3ddfa_v2,pixel_centres=1,jitter=13 \\
        --eval ../shared/data/aflw_val --eval ../shared/data/aflw_test

Each photo's best face (the default detector, :mod:`facelm.inference.detectors.registry`) is framed the way the
challenge crops are framed: a first crop from the detector's box and eye keypoints, the teacher's
points on it, then the final 384-pixel crop around those points (their box at
``CROP_BOX_FRACTION`` of the side, centred at ``CROP_CENTRE``, upright along the eye line) and the
teacher's points on that crop as its labels. OUT gets the crops (JPEG), ``annot.pkl``,
``photos.csv`` (each crop's source photo, detector box and score, the view and expression where
the file name gives them (KDEF), the teacher's head pose) and ``photo_set.json`` (the teacher, its
terms, the detector, what was skipped and why, and the closest evaluation image found). Nothing
is written when any crop is a near-duplicate of an evaluation image
(:mod:`facelm.data.near_duplicates`): the build stops with one line naming both files.

All 68 labels are the teacher's: the record says so (``labels: teacher``), and a config entry
for such a set says it has no labels of its own (``photo_sets``), so the DAG builds it only with a
teacher.
"""

from __future__ import annotations

import csv
import io
import os
import re
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from facelm.atomic import atomic_dir, write_json
from facelm.data.annot import save_annot
from facelm.data.folder import ANNOT_NAME, imread_rgb
from facelm.data.limits import positive_int
from facelm.errors import FacelmError
from facelm.inference.detectors.registry import DEFAULT_DETECTOR, create_detector
from facelm.inference.framing import crop_faces, landmark_frames, to_image
from facelm.data.near_duplicates import EvaluationFaces, add_eval_argument, closest_match, refuse_near_duplicates
from facelm.landmarks68 import CHALLENGE_SIZE
from facelm.models.teachers import load_teacher

RECORD_NAME = "photo_set.json"
TABLE_NAME = "photos.csv"
#: every still-image format OpenCV decodes here
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
#: KDEF's file names: session, gender, person, expression, view (``AF01ANHL.JPG``)
KDEF_NAME = re.compile(r"^[AB][FM]\d\d(?P<expression>AF|AN|DI|HA|NE|SA|SU)(?P<view>S|HL|HR|FL|FR)$", re.IGNORECASE)
JPEG_QUALITY = 95


def list_photos(folder: Path) -> list[str]:
    if not folder.is_dir():
        raise FacelmError("not a folder", folder)
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)
    if not names:
        raise FacelmError(f"no photos ({', '.join(PHOTO_SUFFIXES)}) in the folder", folder)
    return names


def name_tags(name: str) -> dict:
    """View and expression from a KDEF-style file name; empty strings elsewhere."""
    match = KDEF_NAME.match(Path(name).stem)
    return {"view": match["view"].upper(), "expression": match["expression"].upper()} if match else {"view": "", "expression": ""}


def head_pose_deg(rotation: np.ndarray) -> np.ndarray:
    """(B, 3) yaw, pitch, roll in degrees of the teacher's scaled rotations (B, 3, 3) (yaw > 0: turned to the image right)."""
    r = rotation / np.linalg.norm(rotation, axis=2, keepdims=True)
    yaw = np.degrees(np.arcsin(np.clip(r[:, 0, 2], -1, 1)))
    pitch = np.degrees(np.arctan2(-r[:, 1, 2], r[:, 2, 2]))
    roll = np.degrees(np.arctan2(r[:, 1, 0], r[:, 0, 0]))
    return np.stack([yaw, pitch, roll], axis=1)


class Labeller:
    """The teacher on 384-pixel crops: (K, 68, 2) crop pixels and (K, 3) head pose in degrees."""

    def __init__(self, spec: str):
        self.model, self.meta = load_teacher(spec)
        self.spec = spec

    @torch.no_grad()
    def __call__(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self.model(torch.from_numpy(crops).permute(0, 3, 1, 2).float())
        return out["landmarks"].numpy() * CHALLENGE_SIZE, head_pose_deg(out["rotation"].numpy())


def frame_face(image: np.ndarray, detector, detections, labeller: Labeller) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The best detection -> (final crop uint8 (384, 384, 3), its labels (68, 2) in crop pixels, head pose (3,)).

    Both crops keep the photo's axes, as the challenge crops do (their faces keep their roll): an
    eye line says nothing about the roll of a full profile, whose two eyes nearly coincide."""
    crops, transforms = crop_faces(image, detector.calibration.landmark_frames(detections.boxes[:1]))
    points, _ = labeller(crops)
    crops, _ = crop_faces(image, landmark_frames(to_image(points, transforms), roll=False))
    points, pose = labeller(crops)
    return crops[0], points[0], pose[0]


def encode_jpeg(crop: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:  # pragma: no cover -- OpenCV encodes any uint8 image
        raise FacelmError("cannot encode a crop as JPEG")
    return data.tobytes()


def label_photos(src: Path, names: list[str], detector, labeller: Labeller, min_score: float) -> tuple[list, dict]:
    """(rows of the faces kept: name, crop JPEG bytes, labels, csv row), {photo: why skipped}."""
    kept, skipped = [], {}
    for name in names:
        image = imread_rgb(src / name)
        found = detector.detect_batch([image])[0]
        if not len(found.scores) or found.scores[0] < min_score:
            skipped[name] = "no face" if not len(found.scores) else f"best face scored {found.scores[0]:.2f} < {min_score}"
            continue
        crop, points, pose = frame_face(image, detector, found, labeller)
        out_name = Path(name).stem + ".jpg"
        row = {"name": out_name, "source": name, **dict(zip(("x0", "y0", "x1", "y1"), np.round(found.boxes[0], 1).tolist())),
               "score": round(float(found.scores[0]), 3), **name_tags(name),
               **dict(zip(("yaw", "pitch", "roll"), np.round(pose, 1).tolist()))}
        kept.append((out_name, encode_jpeg(crop), points, row))
    return kept, skipped


def build_photo_set(src: str | os.PathLike, out: str | os.PathLike, teacher: str, evaluation: list[str | os.PathLike],
                    detector: str = DEFAULT_DETECTOR, min_score: float = 0.5, limit: int | None = None) -> dict:
    """Write ``out`` (atomically: all or nothing) from the photos in ``src``; returns its record."""
    src, out = Path(src), Path(out)
    if not evaluation:
        raise FacelmError("photo-set compares its crops with the evaluation sets: name at least one with --eval")
    if out.resolve() == src.resolve():
        raise FacelmError("photo-set would overwrite its source folder", out)
    names = list_photos(src)[:limit]
    stems = [Path(n).stem for n in names]
    if len(set(stems)) != len(stems):
        raise FacelmError("two photos share a file stem (their crops would share a name)", src)
    evaluation_faces = EvaluationFaces.of_folders(evaluation)
    labeller = Labeller(teacher)
    kept, skipped = label_photos(src, names, create_detector(detector), labeller, min_score)
    if not kept:
        raise FacelmError("no face found in any photo", src)
    crop_names = [src / row[3]["source"] for row in kept]
    greys = (cv2.imdecode(np.frombuffer(row[1], np.uint8), cv2.IMREAD_GRAYSCALE) for row in kept)
    closest = refuse_near_duplicates(crop_names, greys, evaluation_faces)
    record = {"source": str(src.resolve()), "labels": "teacher", "labelled_points": "all 68 by the teacher",
              "teacher": teacher, "teacher_weights_sha256": labeller.meta.get("weights_sha256"),
              "terms": labeller.meta.get("terms"), "detector": detector, "min_score": min_score,
              "n_photos": len(names), "n_faces": len(kept), "skipped": skipped,
              "evaluation_sets": [str(Path(e).resolve()) for e in evaluation], "near_duplicates": closest}
    with atomic_dir(out) as tmp:
        for out_name, data, _, _ in kept:
            (tmp / out_name).write_bytes(data)
        save_annot(tmp / ANNOT_NAME, [k[0] for k in kept], np.stack([k[2] for k in kept]).astype(np.float32))
        (tmp / TABLE_NAME).write_text(_csv([k[3] for k in kept]))
        write_json(tmp / RECORD_NAME, record)
    return record


def _csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def add_arguments(parser) -> None:
    parser.add_argument("src", help="folder of photos (one main face each)")
    parser.add_argument("out", help="output challenge-format folder: crops, annot.pkl, photos.csv, photo_set.json")
    parser.add_argument("--teacher", required=True, help="teacher spec, e.g. 3ddfa_v2:../shared/models/3ddfa_v2,jitter=13")
    add_eval_argument(parser)
    parser.add_argument("--detector", default=DEFAULT_DETECTOR)
    parser.add_argument("--min-score", type=float, default=0.5, help="skip photos whose best face scores lower")
    parser.add_argument("--limit", type=positive_int, help="only the first N photos (sorted by name)")
    parser.add_argument("--threads", type=positive_int, default=1, help="torch threads (default 1)")


def main(args) -> int:
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    record = build_photo_set(args.src, args.out, args.teacher, args.eval, args.detector, args.min_score, args.limit)
    print(f"{args.out}: {record['n_faces']} faces from {record['n_photos']} photos ({len(record['skipped'])} skipped), "
          f"labelled by {args.teacher}; {closest_match(record['near_duplicates'])}, {time.perf_counter() - started:.0f} s")
    return 0
