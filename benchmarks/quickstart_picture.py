"""The README's picture: the shipped default model's 68 points on faces, each photo as given and turned.

    python benchmarks/quickstart_picture.py --photos skimage/data --names astronaut.png --turns 0 30 90 180
        # -> docs/quickstart.jpg, the README's picture: NASA's public-domain portrait of Eileen Collins,
        #    skimage/data/astronaut.png inside scikit-image's wheel (`pip download --no-deps scikit-image`)
    python benchmarks/quickstart_picture.py            # 300w_raw_sample's photos (300-W terms: kept out of the repo)
    python benchmarks/quickstart_picture.py --photos ../shared/data/kdef_photos --model fast --model budget \
        --names AM08NEFL.jpg AF14HAHL.jpg AM22SUS.jpg AF25ANHR.jpg BM31NEFR.jpg --out docs/kdef_profiles.jpg

Runs ``facelm.Landmarker()`` (default model and detector, as the Quickstart does) on whole photos,
cuts a square around each chosen face, draws its points and lines (``facelm predict --lines``'s
drawing) and puts the tiles side by side, one row per ``--model``. Photos from ../shared/data (or
$FACELM_SHARED_DATA).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import cv2
import numpy as np

import facelm
from facelm.errors import FacelmError
from facelm.inference.drawing import draw_faces

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rotation import turned  # noqa: E402  (the rotation benchmark's turn, on a canvas that keeps every pixel)

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FACELM_SHARED_DATA", ROOT.parent / "shared" / "data"))
#: photos of 300w_raw_sample, one face each (the largest), chosen for a spread of pose and age
PHOTOS = ("1051618982_1.jpg", "1139324862_1.jpg", "134212_1.jpg", "1634816_1.jpg", "16413031_1.jpg")


def tile(image: np.ndarray, face: facelm.Face, side: int) -> np.ndarray:
    """A ``side`` px square around ``face`` (1.5 boxes wide) with its points drawn at tile resolution."""
    centre, half = (face.box[:2] + face.box[2:]) / 2, 0.75 * float(np.max(face.box[2:] - face.box[:2]))
    k = side / (2 * half)
    # tile pixel centre u + 0.5 = k (x + 0.5 - corner)
    corner = centre - half
    warp = np.array([[k, 0, k * (0.5 - corner[0]) - 0.5], [0, k, k * (0.5 - corner[1]) - 0.5]])
    cut = cv2.warpAffine(image, warp, (side, side), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    moved = dataclasses.replace(face, box=(face.box - np.tile(corner, 2)) * k, landmarks=(face.landmarks - corner) * k)
    return draw_faces(cut, [moved], whole_image=True, lines=True)


def model_row(lm: facelm.Landmarker, photos: Path, names: list[str], turns: list[float], side: int) -> np.ndarray:
    """The tiles of one model, side by side: each photo's largest face, at each turn."""
    tiles = []
    for name in names:
        image = cv2.imread(str(photos / name))
        if image is None:
            raise SystemExit(f"quickstart_picture: cannot read {photos / name}")
        for degrees in turns:
            shown = turned(image, -degrees)[0] if degrees else image  # rotation.py turns counter-clockwise
            faces = lm(shown)
            if not faces:
                raise SystemExit(f"quickstart_picture: no face found in {name} turned {degrees} degrees")
            tiles.append(tile(shown, max(faces, key=lambda f: float(np.prod(f.box[2:] - f.box[:2]))), side))
    return np.concatenate(tiles, axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", default=str(DATA / "300w_raw_sample"))
    parser.add_argument("--names", nargs="+", default=list(PHOTOS), help="photos in --photos, one tile each")
    parser.add_argument("--model", action="append", help="shipped model name or .onnx, one row each (default: the default model)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "quickstart.jpg"))
    parser.add_argument("--turns", nargs="+", type=float, default=[0.0], help="clockwise turns in degrees, a tile each")
    parser.add_argument("--side", type=int, default=256, help="tile side in pixels")
    args = parser.parse_args()
    landmarkers = [facelm.Landmarker(model=m) for m in args.model] if args.model else [facelm.Landmarker()]
    grid = np.concatenate([model_row(lm, Path(args.photos), args.names, args.turns, args.side) for lm in landmarkers], axis=0)
    if not cv2.imwrite(args.out, grid, [cv2.IMWRITE_JPEG_QUALITY, 85]):
        raise FacelmError("cannot write the picture", args.out)
    print(f"{args.out}: {grid.shape[1]}x{grid.shape[0]}, {Path(args.out).stat().st_size / 1024:.0f} KB, "
          + ", ".join(lm.model_id for lm in landmarkers))


if __name__ == "__main__":
    main()
