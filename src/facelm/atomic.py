"""Atomic writes: an output appears complete or not at all, survives a power cut once it has
appeared, is readable by others as the umask allows, and has one writer at a time.

- **Atomic.** A file is written to a temporary sibling ``.NAME.tmp`` and moved onto ``NAME``
  with ``os.replace``; a folder is built in ``.NAME.tmp/`` and renamed. An interrupted or failed
  write leaves the previous output (if any) untouched, and its temporary file or folder is
  removed (on an exception, Ctrl-C, or SIGTERM/SIGHUP through :mod:`facelm.signals`).
- **Permissions.** The output gets ``0666 & ~umask`` (files) or ``0777 & ~umask`` (folders), as
  ``open()`` and ``mkdir`` give: 0644 / 0755 under umask 022, whatever the tool that wrote the
  temporary file did.
- **Durable.** File contents (every file of a folder, fsynced by a few threads at once) reach the
  disk before the rename, and the parent folder after it: on ext4/XFS a rename without them can
  come back after a power cut as an empty or truncated file under the final name.
- **One writer per output.** The writer holds an ``flock`` on ``.NAME.lock`` beside the output
  from before the temporary is made until after the rename; a second writer waits for it (saying
  so once on stderr), then writes its own complete output. The kernel drops the lock when its
  process dies (``kill -9`` included), so it is never stale, and the lock file is removed on
  release (a waiter checks it locked the file still at that path, else it locks again). Holding
  the lock, a writer knows no other writer of that output is alive, so it removes the temporary
  file or folder (and the ``.NAME.old`` of a folder swap) that a killed run left behind.
  On a filesystem without ``flock`` (Lustre mounted ``noflock``) writers are not serialised: each
  writes a uniquely named temporary (``.NAME.XXXXXXXX.tmp``) and stale ones stay.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

from facelm.signals import deferred

#: ``flock`` errors of a filesystem that does not support it (the write goes ahead unlocked).
_NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EINVAL}
#: Threads that fsync a folder's files at once (the filesystem journal commits their flushes together).
FSYNC_THREADS = 8


def process_umask() -> int:
    """The process umask, read without changing it (``/proc``); elsewhere by setting it back at once."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _same_inode(fd: int, path: Path) -> bool:
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino)


def _try_lock(fd: int) -> bool | None:
    """flock ``fd`` without waiting: True if now held, None if another writer holds it, False on a
    filesystem without flock."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return None
    except OSError as err:
        if err.errno in _NO_FLOCK:
            return False
        raise


@contextlib.contextmanager
def output_lock(path: str | os.PathLike) -> Iterator[bool]:
    """Hold the writer's lock of ``path`` (``.NAME.lock`` beside it); yields False where flock is unsupported.

    Creating the lock file and taking the lock, and releasing and removing it, run with signals held
    (:func:`facelm.signals.deferred`), so a SIGTERM cannot leave a lock file nobody holds; only the wait
    for another writer (who removes the file) can be interrupted."""
    path = Path(path)
    lock = path.with_name(f".{path.name}.lock")
    fd, held = None, False
    try:
        while True:
            with deferred():
                fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
                state = _try_lock(fd)
                held = state is not None  # ours to remove at the end (without flock: the file we opened)
            if state is None:
                print(f"facelm: waiting for another process writing {path}", file=sys.stderr, flush=True)
                fcntl.flock(fd, fcntl.LOCK_EX)
                held = True
            if state is False or _same_inode(fd, lock):
                break
            with deferred():  # the holder removed this lock file as it released it: lock the new one
                held = False
                os.close(fd)
                fd = None
        yield state is not False
    finally:
        with deferred():
            if held:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(lock)  # while still locked: a waiter that then gets this file sees it is gone
            if fd is not None:
                os.close(fd)


def _remove(path: Path) -> None:
    """Remove a file or folder tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file's or folder's content to the disk (a read-only descriptor suffices on POSIX)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """fsync every file under ``root`` (several at once), then every folder, deepest first (links are not
    followed: what they point to is not part of the output)."""
    files, folders = [], []
    for folder, _, names in os.walk(root):
        folders.append(folder)
        files.extend(path for path in (os.path.join(folder, name) for name in names) if not os.path.islink(path))
    with ThreadPoolExecutor(FSYNC_THREADS) as pool:
        list(pool.map(fsync_path, files))
    for folder in reversed(folders):
        fsync_path(folder)


@contextlib.contextmanager
def _temporary_beside(path: Path, locked: bool, folder: bool) -> Iterator[Path]:
    """The temporary file or folder for ``path``: ``.NAME.tmp`` under the lock (a stale one removed first),
    a unique ``.NAME.XXXXXXXX.tmp`` without it; removed unless the block moved it away."""
    tmp = None
    try:
        with deferred():  # a signal between making the temporary and the clean-up's start would leave it
            if locked:
                tmp = path.with_name(f".{path.name}.tmp")
                _remove(tmp)
                tmp.mkdir() if folder else tmp.touch()
            elif folder:
                tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
            else:
                fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
                os.close(fd)
                tmp = Path(name)
        yield tmp
    finally:
        if tmp is not None:
            with deferred():
                _remove(tmp)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with output_lock(path) as locked, _temporary_beside(path, locked, folder=False) as tmp:
        yield tmp
        os.chmod(tmp, 0o666 & ~process_umask())
        fsync_path(tmp)
        os.replace(tmp, path)
        fsync_path(path.parent)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[Any]:
    """``open()`` that writes to a temporary file and renames it onto ``path`` on success."""
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as handle:
            yield handle


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary folder; on success it replaces ``path`` (old content removed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.with_name(f".{path.name}.old")
    with output_lock(path) as locked, _temporary_beside(path, locked, folder=True) as tmp:
        if locked:
            _remove(old)  # a swap killed between its two renames left the previous output here
        yield tmp
        os.chmod(tmp, 0o777 & ~process_umask())
        _fsync_tree(tmp)
        with deferred():  # SIGTERM between the two renames would leave neither output in place
            if path.exists():
                _remove(old)
                os.replace(path, old)
            os.replace(tmp, path)
        fsync_path(path.parent)
        _remove(old)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_open(path, "w") as handle:
        json.dump(obj, handle, indent=2, sort_keys=False, default=_json_default)
        handle.write("\n")


def _json_default(value: Any) -> Any:
    """Make numpy scalars/arrays and paths JSON-serialisable."""
    import numpy as np

    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
