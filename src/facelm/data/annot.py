"""Reading and writing ``annot.pkl`` safely.

``annot.pkl`` is untrusted input: it is read with a restricted unpickler that can only
build plain containers, numbers, strings and numpy arrays, as any pickle protocol (0 to 5)
stores them. A pickle that names any other global (``os.system``, ``builtins.eval``...) is
refused before anything runs. Nesting needs no limit of its own: the unpickler builds
containers without recursion, and every entry must then be 68 (x, y) pairs.

Memory: the challenge's format holds each face's points as 68 Python lists of two floats, about
8 KB per face once unpickled. Writing streams the pickle face by face (no such lists for the whole
set exist at once); reading unpickles from the file (not from a copy of its bytes) and
:func:`load_annot` turns the entries into one float32 array (544 bytes a face), freeing each
face's lists as it goes. The unpickled lists themselves are the one part of a 100,000-face run
that grows with N; the images never are.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
from numpy._core.multiarray import _reconstruct, scalar
from numpy._core.numeric import _frombuffer

from facelm.atomic import atomic_open
from facelm.data.limits import POINTS
from facelm.errors import FacelmError

def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as pickle protocols 0-2 use it to store bytes; only the latin-1 codec (others
    such as zlib_codec or base64_codec would run other work than rebuilding bytes)."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refused _codecs.encode with {encoding!r}")
    return text.encode("latin-1")


def _empty_array(subtype: type, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's ``_reconstruct`` as its pickles use it: an empty array that ``__setstate__`` then fills from
    the file's own bytes. A non-empty shape would allocate memory that the file does not hold."""
    if subtype is not np.ndarray or np.prod(shape) != 0:
        raise pickle.UnpicklingError("refused an ndarray reconstruction that is not empty")
    return _reconstruct(subtype, shape, dtype)


#: The only globals a legitimate annot.pkl may reference -- numpy arrays, dtypes and scalars as pickled at
#: every protocol by numpy 1.x (numpy.core) and 2.x (numpy._core), and bytes at protocols 0-2 -- and what each
#: is built with.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_bytes,
    **{(f"numpy.{core}.multiarray", "_reconstruct"): _empty_array for core in ("core", "_core")},
    **{(f"numpy.{core}.multiarray", "scalar"): scalar for core in ("core", "_core")},
    **{(f"numpy.{core}.numeric", "_frombuffer"): _frombuffer for core in ("core", "_core")},
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[(module, name)]
        raise pickle.UnpicklingError(f"refused to load global {module}.{name}")


def _restricted_load_file(path: Path) -> Any:
    with open(path, "rb") as handle:
        if not handle.read(1):
            raise FacelmError("annotation file is empty", path)
        handle.seek(0)
        return _RestrictedUnpickler(handle).load()


def load_annot_raw(path: str | os.PathLike) -> tuple[list[str], list[Any]]:
    """Load ``(names, landmarks)`` checking only the outer structure.

    Per-image landmark entries are returned as they were stored, so that
    :mod:`facelm.data.checks` can report each bad entry instead of failing on the first.
    """
    path = Path(path)
    try:
        obj = _restricted_load_file(path)
    except FileNotFoundError:
        raise FacelmError("annotation file not found", path) from None
    except IsADirectoryError:
        raise FacelmError("cannot read annotation file (Is a directory)", path) from None
    except FacelmError:
        raise
    except OSError as err:
        raise FacelmError(f"cannot read annotation file ({err.strerror})", path) from None
    except pickle.UnpicklingError as err:
        raise FacelmError(f"not a safe annotation pickle: {err}", path) from None
    except Exception as err:  # truncated / corrupt pickles raise many kinds
        raise FacelmError(f"corrupt annotation pickle ({type(err).__name__}: {err})", path) from None
    if not (isinstance(obj, (tuple, list)) and len(obj) == 2):
        raise FacelmError(f"expected a pair (names, landmarks), got {type(obj).__name__}", path)
    names, landmarks = obj
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise FacelmError("names must be a list of strings", path)
    if isinstance(landmarks, np.ndarray):
        landmarks = list(landmarks)
    if not isinstance(landmarks, (list, tuple)):
        raise FacelmError(f"landmarks must be a list, got {type(landmarks).__name__}", path)
    if len(names) != len(landmarks):
        raise FacelmError(f"{len(names)} names but {len(landmarks)} landmark entries", path)
    return list(names), list(landmarks)


def as_landmark_array(entry: Any) -> np.ndarray | None:
    """One image's entry as a float32 (68, 2) array, or None if it is not 68 numeric pairs."""
    try:
        arr = np.asarray(entry, dtype=np.float32)
    except (TypeError, ValueError):
        return None
    if arr.shape != (POINTS, 2):
        return None
    return arr


def load_annot(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Load and validate ``annot.pkl``: names and a float32 (N, 68, 2) array of finite points."""
    names, entries = load_annot_raw(path)
    stacked = np.empty((len(names), POINTS, 2), np.float32)
    for i, name in enumerate(names):
        arr = as_landmark_array(entries[i])
        if arr is None:
            raise FacelmError(f"landmarks of {name!r} are not {POINTS} (x, y) pairs", path)
        if not np.isfinite(arr).all():
            raise FacelmError(f"landmarks of {name!r} contain non-finite values", path)
        stacked[i] = arr
        entries[i] = None  # frees this face's lists now, not after the whole set
    if len(set(names)) != len(names):
        raise FacelmError("duplicate image names", path)
    return names, stacked


def _pickled(obj: Any) -> bytes:
    """The opcodes of ``obj`` alone (protocol 2, no memo, no PROTO/STOP), to splice into a larger pickle."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=2)
    pickler.fast = True  # no memo: pieces pickled apart can be concatenated
    pickler.dump(obj)
    return buffer.getvalue()[2:-1]


#: Faces per APPENDS, as the C pickler batches list items.
_BATCH = 1000


def save_annot(path: str | os.PathLike, names: list[str], landmarks: np.ndarray) -> None:
    """Write ``annot.pkl`` in the challenge format, ``(names, [68 [x, y] lists per face])`` with plain floats,
    atomically, streaming the landmark list face by face (the same object as ``pickle.dump`` of it)."""
    landmarks = np.asarray(landmarks, dtype=np.float32)
    if landmarks.shape != (len(names), POINTS, 2):
        raise FacelmError(f"cannot save landmarks of shape {landmarks.shape} for {len(names)} names", path)
    with atomic_open(path, "wb") as handle:
        handle.write(pickle.PROTO + b"\x02" + _pickled(list(names)) + pickle.EMPTY_LIST)
        for start in range(0, len(landmarks), _BATCH):
            handle.write(pickle.MARK)
            for face in landmarks[start : start + _BATCH]:
                handle.write(_pickled(face.astype(np.float64).tolist()))
            handle.write(pickle.APPENDS)
        handle.write(pickle.TUPLE2 + pickle.STOP)
