"""Where ``facelm predict``'s inputs come from and what their outputs are called: no prediction is
lost to a name clash and no input is ever written over.

Each input has a path relative to what was given: a folder's images (not recursive) are their file
names in that folder, a file given directly is its file name. Outputs are named from it, as short
as stays unique over the whole run (:func:`output_names`):

1. the stem: ``face.jpg`` -> ``face.json`` (+ the overlay ``face.jpg``, ``face.landmarks.csv``, ...);
2. inputs whose stems clash keep their suffix: ``face.jpg`` and ``face.png`` -> ``face.jpg.json``
   and ``face.png.json``;
3. inputs whose file names clash (two folders each holding ``IMG_0001.jpg``) go into a subfolder
   named after the folder they came from: ``a/IMG_0001.jpg.json``, ``b/IMG_0001.jpg.json``; when
   those folder names clash as well, the input's position on the command line is appended
   (``photos-1/``, ``photos-2/``).

The output folder may not be an input folder or lie inside one (:func:`check_out_folder`), so a
written overlay can never land on an input photo.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from facelm.errors import FacelmError

#: photo formats a folder run picks up: what OpenCV's imread decodes (the header check needs Pillow to know it too)
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".dib", ".tif", ".tiff", ".pbm", ".pgm", ".ppm", ".pnm")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")


@dataclass(frozen=True)
class Input:
    path: Path  # the file
    given: Path  # the argument it came from (a folder, or the file itself)
    position: int  # 1-based position of that argument on the command line


def expand_inputs(inputs: list[str]) -> tuple[list[Input], list[str], list[Path]]:
    """Files and folders -> (the image and video files in the given order, one error line per argument
    that is neither a file nor a folder with images or videos, the folders' other files: skipped)."""
    found, errors, skipped = [], [], []
    for position, item in enumerate(inputs, 1):
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
            taken = [p for p in files if p.suffix.lower() in PHOTO_SUFFIXES + VIDEO_SUFFIXES]
            skipped += [p for p in files if p not in taken]
            found += [Input(p, path, position) for p in taken]
            if not taken:
                errors.append(f"{path}: no images or videos ({', '.join(PHOTO_SUFFIXES + VIDEO_SUFFIXES)}) in the folder")
        elif path.is_file():
            found.append(Input(path, path, position))
        else:
            errors.append(f"{path}: no such file or folder")
    return found, errors, skipped


def _folder_label(item: Input) -> str:
    folder = item.given if item.given != item.path else item.path.parent
    return folder.resolve().name or "root"


def output_names(items: list[Input]) -> list[str]:
    """One output base name per input (no extension; may hold one ``folder/``), unique over the run."""
    names = [item.path.stem for item in items]
    for level in (1, 2):
        counts = Counter(names)
        for i, item in enumerate(items):
            if counts[names[i]] > 1:
                names[i] = item.path.name if level == 1 else f"{_folder_label(item)}/{item.path.name}"
    counts = Counter(names)
    return [f"{_folder_label(item)}-{item.position}/{item.path.name}" if counts[name] > 1 else name
            for name, item in zip(names, items)]


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_out_folder(out: str | os.PathLike, items: list[Input], outputs: list[Path]) -> None:
    """Refuse (before any work) an output folder that is, or lies inside, an input folder, and any
    output file that is an input file."""
    out = Path(out).resolve()
    for folder in sorted({item.given.resolve() for item in items if item.given != item.path}):
        if _is_within(out, folder):
            raise FacelmError(f"the output folder is inside the input folder {folder}: outputs would mix with the "
                              "inputs (and an overlay could overwrite one); choose an --out outside it", out)
    inputs = {item.path.resolve() for item in items}
    clash = next((path for path in outputs if path.resolve() in inputs), None)
    if clash is not None:
        raise FacelmError(f"an output would overwrite the input {clash}; choose another --out", out)
