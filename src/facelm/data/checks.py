"""Check a challenge-format folder: every image and every label, before anything trains.

Problems found (each listed with a count and the first examples): unreadable, truncated or
empty images; images over the limits of :mod:`facelm.data.limits` (judged from the header,
before decoding); wrong size or channel count; labels without an image and images without a
label; duplicate names; landmark arrays that are not 68x2; non-finite values; points far
outside the crop (beyond a quarter of the crop side). Statistics: box size, box centre and a
yaw proxy. A folder without images is an error. A failing check exits with status 2 and one
line listing every kind of problem; ``--drop-bad`` writes a clean index of the valid
images instead, which downstream steps read.
"""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from facelm.data.annot import as_landmark_array, load_annot_raw
from facelm.atomic import atomic_open, write_json
from facelm.errors import FacelmError
from facelm.data.folder import ANNOT_NAME, IMAGE_SUFFIXES, list_images
from facelm.data.limits import MAX_IMAGE_BYTES, image_problem, positive_int
from facelm.landmarks68 import box_centre, box_size, yaw_proxy
from facelm.verbs import add_config_arguments, verb_config

#: Points more than this fraction of the crop side outside the crop are "far outside".
OUTSIDE_MARGIN = 0.25
EXAMPLES = 3
_END_MARKERS = {".jpg": b"\xff\xd9", ".jpeg": b"\xff\xd9", ".png": b"IEND\xaeB`\x82"}

PROBLEM_TEXT = {
    "empty_file": "empty image files",
    "unreadable": "unreadable images",
    "over_limits": "images over the size limits",
    "truncated": "truncated images",
    "wrong_size": "images of the wrong size",
    "wrong_channels": "images without 3 colour channels",
    "label_without_image": "labels in annot.pkl with no image file",
    "image_without_label": "images with no label in annot.pkl",
    "duplicate_name": "duplicate names in annot.pkl",
    "bad_shape": "landmark arrays that are not 68x2",
    "non_finite": "landmarks with NaN or infinite values",
    "far_outside": "landmarks far outside the crop",
}


def check_image(path: Path, size: int) -> str | None:
    """The problem kind of one image file, or None when it is fine (limits checked before decoding)."""
    try:
        if path.stat().st_size > MAX_IMAGE_BYTES:
            return "over_limits"
        data = path.read_bytes()
    except OSError:
        return "unreadable"
    marker = _END_MARKERS.get(path.suffix.lower())
    cut_short = bool(marker) and marker not in data[-64:] and data[:2] in (b"\xff\xd8", b"\x89P")
    problem = image_problem(data)
    if problem:
        return "truncated" if cut_short and problem[0] == "unreadable" else problem[0]
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        image = None
    if cut_short:
        return "truncated"
    if image is None:
        return "unreadable"
    if image.shape[:2] != (size, size):
        return "wrong_size"
    if image.ndim != 3 or image.shape[2] != 3:
        return "wrong_channels"
    return None


#: Images in flight at once in check-data's reader threads.
CHECK_CHUNK = 512


def check_folder(folder: str | os.PathLike, size: int = 384, workers: int = 4) -> dict:
    """Check every image and label of ``folder``; returns the report (see module doc)."""
    folder = Path(folder)
    files = list_images(folder)
    if not files:
        raise FacelmError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in the folder", folder)
    problems: dict[str, list[str]] = {kind: [] for kind in PROBLEM_TEXT}
    kinds: list[str | None] = []
    with ThreadPoolExecutor(max(1, workers)) as pool, tqdm(total=len(files), desc=f"check {folder.name}", unit="img",
                                                           disable=None, leave=False) as bar:
        for start in range(0, len(files), CHECK_CHUNK):  # bounded: Executor.map would queue every image at once
            chunk = files[start : start + CHECK_CHUNK]
            kinds.extend(pool.map(lambda name: check_image(folder / name, size), chunk))
            bar.update(len(chunk))
    for name, kind in zip(files, kinds):
        if kind:
            problems[kind].append(name)

    labelled = (folder / ANNOT_NAME).exists()
    stats: dict = {}
    valid_names = [n for n, k in zip(files, kinds) if k is None]
    if labelled:
        names, entries = load_annot_raw(folder / ANNOT_NAME)
        counts = Counter(names)
        problems["duplicate_name"] = sorted(n for n, c in counts.items() if c > 1)
        present = set(files)
        problems["label_without_image"] = [n for n in counts if n not in present]
        problems["image_without_label"] = [n for n in files if n not in counts]
        good_points = {}
        for name, entry in zip(names, entries):
            points = as_landmark_array(entry)
            if points is None:
                problems["bad_shape"].append(name)
            elif not np.isfinite(points).all():
                problems["non_finite"].append(name)
            elif ((points < -OUTSIDE_MARGIN * size) | (points > (1 + OUTSIDE_MARGIN) * size)).any():
                problems["far_outside"].append(name)
            elif counts[name] == 1:
                good_points[name] = points
        bad = {n for kind in problems for n in problems[kind]}
        valid_names = [n for n in names if n not in bad and n in good_points and n in present]
        if valid_names:
            pts = np.stack([good_points[n] for n in valid_names])
            sizes, centres, yaws = box_size(pts), box_centre(pts), yaw_proxy(pts)
            stats = {
                "box_size": {"mean": float(sizes.mean()), "std": float(sizes.std()), "min": float(sizes.min()),
                             "max": float(sizes.max())},
                "box_centre": centres.mean(axis=0).tolist(),
                "yaw_proxy": {"mean": float(yaws.mean()), "share_abs_over_0.5": float((np.abs(yaws) > 0.5).mean()),
                              "histogram": np.histogram(yaws, bins=10, range=(-1, 1))[0].tolist()},
            }
    return {
        "folder": str(folder),
        "labelled": labelled,
        "n_images": len(files),
        "n_valid": len(valid_names),
        "expected_size": size,
        "problems": {kind: names for kind, names in problems.items() if names},
        "valid_names": valid_names,
        "stats": stats,
    }


def problem_texts(report: dict) -> list[str]:
    """One phrase per kind of problem: count and first examples."""
    texts = []
    for kind, names in report["problems"].items():
        examples = ", ".join(names[:EXAMPLES]) + (", ..." if len(names) > EXAMPLES else "")
        texts.append(f"{len(names)} {PROBLEM_TEXT[kind]} ({examples})")
    return texts


def add_arguments(parser) -> None:
    parser.add_argument("folder", help="challenge-format folder (JPEGs + optional annot.pkl)")
    add_config_arguments(parser, "check-data", required=False)
    parser.add_argument("--drop-bad", action="store_true", default=None,
                        help="sets check.drop_bad: write a clean index of the valid images instead of failing")
    parser.add_argument("--out", help="JSON report")
    parser.add_argument("--index", help="clean index file (default: the --out path with suffix .index)")
    parser.add_argument("--size", type=positive_int, default=384, help="expected crop side (default 384)")
    parser.add_argument("--workers", type=int, default=4, help="reader threads")


def drop_bad(args) -> bool:
    """``check.drop_bad`` of ``--config`` (flags and overrides applied), else the ``--drop-bad`` flag."""
    if args.config:
        return verb_config("check-data", args).check.drop_bad
    if args.overrides:
        raise FacelmError(f"KEY=VALUE overrides ({args.overrides[0]}) need --config; without it give --drop-bad")
    return bool(args.drop_bad)


def main(args) -> int:
    dropping = drop_bad(args)
    report = check_folder(args.folder, args.size, args.workers)
    kind = "labelled" if report["labelled"] else "unlabelled"
    texts = problem_texts(report)
    summary = f"{Path(args.folder).name}: {report['n_images']} {kind} images, "
    summary += "all valid" if not texts else f"{report['n_valid']} valid"
    print(summary)
    if report["stats"]:
        s = report["stats"]
        print(f"  box size {s['box_size']['mean']:.1f} +- {s['box_size']['std']:.1f} px, centre "
              f"({s['box_centre'][0]:.1f}, {s['box_centre'][1]:.1f}), yaw proxy mean {s['yaw_proxy']['mean']:+.3f}")
    index = args.index or (str(Path(args.out).with_suffix(".index")) if args.out else None)
    if dropping and index is None:
        raise FacelmError("--drop-bad needs --index or --out to say where the clean index goes")
    if args.out:
        write_json(args.out, {k: v for k, v in report.items() if k != "valid_names"})
    if texts and not dropping:
        raise FacelmError("; ".join(texts) + " (--drop-bad keeps the valid images)", args.folder)
    for text in texts:
        print(f"  dropped: {text}")
    if index:
        with atomic_open(index, "w") as handle:
            handle.write("".join(f"{name}\n" for name in report["valid_names"]))
    return 0
