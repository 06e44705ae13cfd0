"""Validate a challenge solution file (``solution.txt`` or a zip holding only it).

Read as a stream with bounds: rows of at most :data:`MAX_LINE_CHARS`, at most
:data:`MAX_SOLUTION_BYTES` in all (for a zip, its member's uncompressed size, checked before reading).

Rules: one row per test image, each image exactly once, 137 fields (name + 68 x/y pairs)
separated by single spaces, finite numbers; test image names within
:data:`facelm.data.limits.NAME_RULE` (a name with a space could not be one field). The first
problem is reported with its line.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
from array import array
import zipfile
from pathlib import Path
from typing import Iterator

import numpy as np

from facelm.errors import FacelmError
from facelm.data.folder import list_images
from facelm.data.limits import POINTS, check_names

FIELDS = 1 + POINTS * 2
SOLUTION_NAME = "solution.txt"
#: Longest row read, in characters (a row is about 1.3 KB: a name and 136 numbers).
MAX_LINE_CHARS = 64 * 1024
#: Largest solution read, in bytes, as a file or as the zip's uncompressed member (about 1.5M rows).
MAX_SOLUTION_BYTES = 2 * 2**30


def solution_lines(path: str | os.PathLike, shown_as: str | os.PathLike | None = None) -> Iterator[str]:
    """The lines of a solution file (or of the zip's only member), streamed; errors name ``shown_as`` (the final
    name of a temporary file) if given."""
    path, where = Path(path), shown_as or path
    try:
        with contextlib.ExitStack() as stack:
            if path.suffix.lower() == ".zip":
                archive = stack.enter_context(zipfile.ZipFile(path))
                names = archive.namelist()
                if names != [SOLUTION_NAME]:
                    raise FacelmError(f"zip must hold only {SOLUTION_NAME}, it holds {names[:5]}", where)
                nbytes = archive.getinfo(SOLUTION_NAME).file_size  # the member cannot expand past it (zipfile)
                raw = stack.enter_context(archive.open(SOLUTION_NAME))
                handle = stack.enter_context(io.TextIOWrapper(raw, encoding="utf-8", newline=None))
            else:
                nbytes = path.stat().st_size
                handle = stack.enter_context(open(path, encoding="utf-8"))
            if nbytes > MAX_SOLUTION_BYTES:
                raise FacelmError(f"solution is {nbytes / 2**30:.1f} GiB uncompressed, over the limit "
                                  f"({MAX_SOLUTION_BYTES // 2**30} GiB)", where)
            for number, line in enumerate(iter(lambda: handle.readline(MAX_LINE_CHARS + 1), ""), start=1):
                if len(line) > MAX_LINE_CHARS:
                    raise FacelmError(f"line {number}: over {MAX_LINE_CHARS} characters", where)
                yield line.rstrip("\n")
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError) as err:
        raise FacelmError(f"cannot read solution ({type(err).__name__})", where) from None


def parse_solution(path: str | os.PathLike, shown_as: str | os.PathLike | None = None) -> tuple[list[str], np.ndarray]:
    """(names, (N, 68, 2)) of a solution file, read line by line into one flat buffer (8 bytes a number, no
    per-row objects); a malformed row -> one-line error with its line number."""
    where = shown_as or path
    names, values = [], array("d")
    for number, line in enumerate(solution_lines(path, shown_as), start=1):
        fields = line.split(" ")
        if len(fields) != FIELDS:
            raise FacelmError(f"line {number}: {len(fields)} fields, expected {FIELDS} (name + 136 numbers, single spaces)", where)
        try:
            row = [float(v) for v in fields[1:]]
        except ValueError:
            raise FacelmError(f"line {number}: a coordinate is not a number", where) from None
        if not all(math.isfinite(v) for v in row):
            raise FacelmError(f"line {number}: a coordinate is NaN or infinite", where)
        names.append(fields[0])
        values.extend(row)
    return names, np.frombuffer(values, np.float64).reshape(-1, POINTS, 2).copy()


def validate_solution(path: str | os.PathLike, expected_names: list[str],
                      shown_as: str | os.PathLike | None = None) -> tuple[list[str], np.ndarray]:
    """Check a solution against the test image names; errors name ``shown_as`` if given, else ``path``."""
    names, points = parse_solution(path, shown_as)
    path = shown_as or path
    seen: dict[str, int] = {}
    expected = set(expected_names)
    for number, name in enumerate(names, start=1):
        if name in seen:
            raise FacelmError(f"line {number}: {name} duplicates line {seen[name]}", path)
        if name not in expected:
            raise FacelmError(f"line {number}: {name} is not a test image", path)
        seen[name] = number
    missing = [n for n in expected_names if n not in seen]
    if missing:
        raise FacelmError(f"{len(missing)} test images have no row (first: {missing[0]})", path)
    return names, points


def add_arguments(parser) -> None:
    parser.add_argument("solution", help="solution.txt or solution.zip")
    parser.add_argument("test_dir", help="the test folder the solution is for")


def main(args) -> int:
    expected = list_images(args.test_dir)
    if not expected:
        raise FacelmError("no test images in the folder", args.test_dir)
    check_names(args.test_dir, expected)
    names, _ = validate_solution(args.solution, expected)
    print(f"{args.solution}: valid, {len(names)} rows")
    return 0
