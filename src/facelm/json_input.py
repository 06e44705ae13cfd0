"""Reading JSON that a user may have written or edited: bounded in size, depth and time.

``json.loads`` recurses once per level of nesting, so ``[[[[...]]]]`` a few thousand deep reaches
Python's recursion limit (a RecursionError traceback), and anything read afterwards may recurse
again. :func:`read_json` refuses files over :data:`MAX_JSON_BYTES` before parsing and values
nested deeper than :data:`MAX_JSON_DEPTH` after it (checked without recursion), each as one line
naming the file. Every facelm JSON file (ensemble specs, params, metrics, cache metadata, model
cards) is a few levels deep.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from facelm.errors import FacelmError

#: Largest JSON file read (the metadata of a 1M-face cache, names included, is about 20 MB).
MAX_JSON_BYTES = 64 * 2**20
#: Deepest nesting of lists and objects accepted.
MAX_JSON_DEPTH = 32


def nesting_depth_over(value: Any, limit: int) -> bool:
    """True when ``value`` holds lists / dicts / tuples nested deeper than ``limit`` (iterative walk)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """Parse ``path``; a missing, oversized, non-UTF-8, malformed or too deeply nested file is a one-line
    FacelmError naming it and ``what`` it should have been."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise FacelmError(f"{what} is over {MAX_JSON_BYTES // 2**20} MiB", path)
        value = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise FacelmError(f"{what} not found", path) from None
    except RecursionError:
        raise FacelmError(f"not a valid {what} (nested deeper than {MAX_JSON_DEPTH} levels)", path) from None
    except (UnicodeDecodeError, ValueError) as err:
        raise FacelmError(f"not a valid {what} ({type(err).__name__}: {err})", path) from None
    if nesting_depth_over(value, MAX_JSON_DEPTH):
        raise FacelmError(f"not a valid {what} (nested deeper than {MAX_JSON_DEPTH} levels)", path)
    return value
