"""Points on turned photos against the upright prediction, by in-plane angle, and how the confidence follows the error.

    python benchmarks/rotation.py                 # the shipped default model, the default detector
    python benchmarks/rotation.py --upright-only  # without the keypoint search over quarter turns

Each of the 20 labelled faces of ../shared/data/300w_raw_sample (or $FACELM_SHARED_DATA) is cut out
with its surroundings (a square 2.5 face boxes wide, scaled to 512 px) and turned by 0-180 degrees
in 15-degree steps on a canvas large enough to keep every pixel. The face nearest the turned face's
centre is mapped back to the upright image and compared with ``Landmarker``'s prediction on the
upright cut-out: mean point distance in % of the inter-ocular distance (outer eye corners). A face
is missed when no face is found within half a face size of where it should be.

The second table pools every turned face and the same cut-outs with a grey bar over the eyes or
over the mouth, and gives the mean confidence and error per error band: a low confidence should
flag the points that are off the face.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import cv2
import numpy as np

import facelm
from facelm.data.prepare import read_points
from facelm.landmarks68 import bbox, interocular

DATA = Path(os.environ.get("FACELM_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
ANGLES = tuple(range(0, 181, 15))
SIDE = 512
BANDS = ((0, 10), (10, 25), (25, 50), (50, 1e9))


def cut_outs(folder: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(BGR SIDE x SIDE cut-out, labelled points in it) of every labelled face."""
    out = []
    for pts in sorted(folder.glob("*.pts")):
        points = read_points(pts)
        box = bbox(points)
        centre, side = (box[:2] + box[2:]) / 2, 2.5 * float(max(box[2:] - box[:2]))
        k = SIDE / side
        warp = np.array([[k, 0, SIDE / 2 - k * centre[0]], [0, k, SIDE / 2 - k * centre[1]]])
        image = cv2.warpAffine(cv2.imread(str(pts.with_suffix(".jpg"))), warp, (SIDE, SIDE), flags=cv2.INTER_AREA,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=(110, 110, 110))
        out.append((image, points @ warp[:, :2].T + warp[:, 2]))
    return out


def turned(image: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """The image turned by ``angle`` degrees (counter-clockwise on screen) on a canvas that keeps every
    pixel -> (canvas, 2x3 map of upright continuous coordinates to the canvas)."""
    h, w = image.shape[:2]
    side = int(np.ceil(np.hypot(h, w)))
    warp = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    warp[:, 2] += (side - w) / 2, (side - h) / 2
    # cv2's maps are in pixel-centre coordinates; continuous ones differ by 0.5 on both sides
    canvas = cv2.warpAffine(image, warp, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                            borderValue=(110, 110, 110))
    continuous = warp.copy()
    continuous[:, 2] += 0.5 - warp[:, :2].sum(1) * 0.5
    return canvas, continuous


def nearest(faces, where: np.ndarray, size: float):
    """The face whose points' centre is nearest ``where`` (within half ``size``), or None."""
    dist = [np.linalg.norm(f.landmarks.mean(0) - where) for f in faces]
    return faces[int(np.argmin(dist))] if dist and min(dist) < size / 2 else None


def error_pct(face, reference: np.ndarray, back: np.ndarray | None = None) -> float:
    """Mean point distance of ``face`` (mapped by the 2x3 ``back`` when given) to ``reference``, % of its inter-ocular distance."""
    points = face.landmarks.astype(np.float64)
    if back is not None:
        points = points @ back[:, :2].T + back[:, 2]
    return float(np.linalg.norm(points - reference, axis=1).mean() / interocular(reference) * 100)


def occluded(image: np.ndarray, points: np.ndarray, part: str) -> np.ndarray:
    """A grey bar over the eyes (points 36-47) or the mouth (48-67)."""
    box = bbox(points[36:48] if part == "eyes" else points[48:68])
    pad = 0.3 * (box[3] - box[1]) + 4
    out = image.copy()
    cv2.rectangle(out, (int(box[0] - pad), int(box[1] - pad)), (int(box[2] + pad), int(box[3] + pad)), (110, 110, 110), -1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a shipped model name or a model file (default: the shipped default)")
    parser.add_argument("--min-score", type=float, help="the detector score floor (default: Landmarker's)")
    parser.add_argument("--upright-only", action="store_true", help="Landmarker(any_rotation=False)")
    args = parser.parse_args()
    extra = {} if args.min_score is None else {"min_score": args.min_score}
    lm = facelm.Landmarker(args.model, any_rotation=not args.upright_only, **extra)
    rows, pooled = [], []  # pooled: (confidence, error %)
    upright = []
    for image, labels in cut_outs(DATA / "300w_raw_sample"):
        face = nearest(lm(image), labels.mean(0), float(np.sqrt(np.prod(bbox(labels)[2:] - bbox(labels)[:2]))))
        upright.append((image, None if face is None else face.landmarks.astype(np.float64)))
    for angle in ANGLES:
        errors, confidences, missed = [], [], 0
        for image, reference in upright:
            if reference is None:
                continue
            canvas, warp = turned(image, angle)
            where = reference.mean(0) @ warp[:, :2].T + warp[:, 2]
            face = nearest(lm(canvas), where, float(interocular(reference)) * 3)
            if face is None:
                missed += 1
                continue
            errors.append(error_pct(face, reference, cv2.invertAffineTransform(warp)))
            confidences.append(face.confidence)
            pooled.append((face.confidence, errors[-1]))
        rows.append((angle, len(errors), missed, np.mean(errors), np.median(errors), np.mean(confidences)))
    for image, reference in upright:
        for part in ("eyes", "mouth") if reference is not None else ():
            face = nearest(lm(occluded(image, reference, part)), reference.mean(0), float(interocular(reference)) * 3)
            if face is not None:
                pooled.append((face.confidence, error_pct(face, reference)))
    print(f"model {lm.model_id}; {sum(r is not None for _, r in upright)} upright faces found of {len(upright)}")
    print("| turn (deg) | found | missed | mean error (% IOD) | median error | mean confidence |")
    print("|---|---|---|---|---|---|")
    for angle, found, missed, mean, median, confidence in rows:
        print(f"| {angle} | {found} | {missed} | {mean:.1f} | {median:.1f} | {confidence:.2f} |")
    pooled_arr = np.array(pooled)
    print("\n| error band (% IOD) | faces | mean confidence |")
    print("|---|---|---|")
    for low, high in BANDS:
        sel = (pooled_arr[:, 1] >= low) & (pooled_arr[:, 1] < high)
        label = f"{low}-{high}" if high < 1e9 else f"{low}+"
        print(f"| {label} | {int(sel.sum())} | {pooled_arr[sel, 0].mean() if sel.any() else float('nan'):.2f} |")
    print(f"Spearman correlation of confidence and error: {_spearman(pooled_arr[:, 0], pooled_arr[:, 1]):.2f}")


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    rank = lambda x: np.argsort(np.argsort(x))  # noqa: E731
    return float(np.corrcoef(rank(a), rank(b))[0, 1])


if __name__ == "__main__":
    main()
