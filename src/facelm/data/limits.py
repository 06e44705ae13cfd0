"""The limits of accepted input, in one place: every reader of user files checks against these.

Images are checked from their header (Pillow's ``Image.open`` reads only the header) before
anything decodes them, so a file claiming 100,000 x 100,000 pixels is refused in one line
instead of reaching OpenCV's size assertion or allocating gigabytes. Image names must survive
the solution format (``name x1 y1 ... x68 y68``, single spaces), so they are limited to a
small character set. Counts and sizes given on the command line are positive integers
(:func:`positive_int`, an argparse type), refused by the parser rather than deep inside a step.

Readers: :func:`facelm.data.folder.imread_bgr` / ``imread_rgb`` (cache, datasets, prepare,
predict, report, show-augment), :func:`facelm.data.checks.check_image`, ``annot.pkl`` and
solution files (:data:`POINTS`, :func:`check_names`).

The limits of the other files read sit with their readers (each below the layers that use it):
configs in :mod:`facelm.config` (size, nesting, no YAML aliases or tags), JSON files in
:mod:`facelm.json_input` (size, nesting), model files in :mod:`facelm.models.checkpoint`
(unpacked size, ensemble members and weights), nested ensembles in :mod:`facelm.inference.loading`,
solution files in :mod:`facelm.challenge.submission_check` (row length, total size).
"""

from __future__ import annotations

import argparse
import io
import os
import re
import warnings
from pathlib import Path

from facelm.errors import FacelmError
from facelm.landmarks68 import NUM_POINTS

#: Longest image side accepted (photos for ``facelm predict`` included).
MAX_IMAGE_SIDE = 16384
#: Most pixels accepted in one image (64 MP: 192 MiB once decoded to RGB).
MAX_IMAGE_PIXELS = 64 * 2**20
#: Largest image file accepted, in bytes.
MAX_IMAGE_BYTES = 128 * 2**20
#: Characters an image name may hold so that it is one field of a solution row.
NAME_RULE = "ASCII letters, digits and . _ + - only, at most 255 characters"
_NAME_PATTERN = re.compile(r"[A-Za-z0-9._+-]{1,255}")
#: Points per face in every label, prediction and solution row.
POINTS = NUM_POINTS
_LIMIT_TEXT = f"{MAX_IMAGE_SIDE} px a side, {MAX_IMAGE_PIXELS // 2**20} MP"


def image_problem(data: bytes) -> tuple[str, str] | None:
    """``(kind, message)`` when an image file's bytes are refused from their header alone, else None.

    Kinds: ``empty_file``, ``over_limits`` (file bytes or header size), ``unreadable`` (no
    known format, or a broken header). Nothing is decoded.
    """
    from PIL import Image

    if not data:
        return "empty_file", "image file is empty"
    if len(data) > MAX_IMAGE_BYTES:
        return "over_limits", f"image file is {len(data) / 2**20:.0f} MiB, over the limit ({MAX_IMAGE_BYTES // 2**20} MiB)"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's decompression-bomb warning: the limits below decide
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
    except Image.DecompressionBombError:
        return "over_limits", f"image header says over {2 * Image.MAX_IMAGE_PIXELS} pixels, over the limit ({_LIMIT_TEXT})"
    except Exception:  # noqa: BLE001 -- Pillow raises many kinds for unknown or broken headers
        return "unreadable", "not a decodable image (unknown format or broken header)"
    if width < 1 or height < 1 or max(width, height) > MAX_IMAGE_SIDE or width * height > MAX_IMAGE_PIXELS:
        return "over_limits", f"image header says {width}x{height} pixels, over the limit ({_LIMIT_TEXT})"
    return None


def check_image_header(data: bytes, path: str | os.PathLike) -> None:
    """FacelmError naming ``path`` when an image file's bytes are refused by :func:`image_problem`."""
    problem = image_problem(data)
    if problem:
        raise FacelmError(problem[1], path)


def check_image_file_size(path: str | os.PathLike) -> None:
    """Refuse a missing image file, or one over :data:`MAX_IMAGE_BYTES`, before reading it."""
    try:
        nbytes = os.stat(path).st_size
    except FileNotFoundError:
        raise FacelmError("image not found", path) from None
    except OSError as err:
        raise FacelmError(f"cannot read image ({err.strerror})", path) from None
    if nbytes > MAX_IMAGE_BYTES:
        raise FacelmError(f"image file is {nbytes / 2**20:.0f} MiB, over the limit ({MAX_IMAGE_BYTES // 2**20} MiB)", path)


def positive_int(text: str) -> int:
    """argparse type for counts and sizes: a bad value is argparse's one-line error, not a crash later."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def name_problem(name: str) -> str | None:
    """Why an image name cannot be a solution-file field, or None when it can."""
    if _NAME_PATTERN.fullmatch(name):
        return None
    return f"image name {name!r} cannot be written in a solution file (names may hold {NAME_RULE})"


def check_names(folder: str | os.PathLike, names: list[str]) -> None:
    """FacelmError naming the first image of ``folder`` whose name breaks :data:`NAME_RULE`."""
    for name in names:
        problem = name_problem(name)
        if problem:
            raise FacelmError(problem, Path(folder) / name)
