"""facelm.atomic and facelm.signals: modes from the umask, fsync before and after the rename, one writer
per output, stale temporaries removed, SIGTERM / SIGHUP raised like Ctrl-C and held through a folder swap."""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import stat
import threading
import time

import pytest

from facelm import atomic
from facelm.atomic import atomic_dir, atomic_open, atomic_path, output_lock, write_json
from facelm.signals import Terminated, deferred, signals_end_like_ctrl_c


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask():
    """Set the process umask for one test (and put the old one back)."""
    saved = os.umask(0o022)
    yield os.umask
    os.umask(saved)


@pytest.mark.parametrize("mask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750), (0o002, 0o664, 0o775)])
def test_outputs_get_the_umask(umask, tmp_path, mask, file_mode, dir_mode):
    umask(mask)
    assert atomic.process_umask() == mask
    write_json(tmp_path / "meta.json", {"a": 1})
    with atomic_path(tmp_path / "model.pt") as tmp:
        tmp.write_bytes(b"x")
    with atomic_dir(tmp_path / "cache") as tmp:
        (tmp / "images.npy").write_bytes(b"x")
        write_json(tmp / "meta.json", {})
    assert _mode(tmp_path / "meta.json") == _mode(tmp_path / "model.pt") == file_mode
    assert _mode(tmp_path / "cache") == dir_mode
    assert _mode(tmp_path / "cache" / "images.npy") == _mode(tmp_path / "cache" / "meta.json") == file_mode


def test_contents_are_fsynced_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    with atomic_open(tmp_path / "solution.txt") as handle:
        handle.write("row\n")
    tmp, out = str(tmp_path / ".solution.txt.tmp"), str(tmp_path / "solution.txt")
    assert events == [("fsync", tmp), ("replace", out), ("fsync", str(tmp_path))]

    events.clear()
    with atomic_dir(tmp_path / "cache") as folder:
        (folder / "images.npy").write_bytes(b"x")
    assert ("fsync", str(tmp_path / ".cache.tmp" / "images.npy")) in events
    assert events.index(("fsync", str(tmp_path / ".cache.tmp"))) < events.index(("replace", str(tmp_path / "cache")))
    assert events[-1] == ("fsync", str(tmp_path))


def test_nothing_is_left_beside_an_output_on_success_or_failure(tmp_path):
    write_json(tmp_path / "a.json", {})
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "cache") as folder:
            (folder / "images.npy").write_bytes(b"x")
            raise RuntimeError("fails half way")
    with pytest.raises(RuntimeError):
        with atomic_open(tmp_path / "b.json") as handle:
            handle.write("{")
            raise RuntimeError("fails half way")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_the_next_writer_removes_a_killed_runs_temporaries(tmp_path):
    (tmp_path / ".solution.txt.tmp").write_text("half a row")
    (tmp_path / ".cache.tmp").mkdir()
    (tmp_path / ".cache.tmp" / "images.npy").write_bytes(b"half")
    (tmp_path / ".cache.old").mkdir()  # a swap killed between its two renames
    (tmp_path / ".other.tmp").write_text("another output's")
    with atomic_open(tmp_path / "solution.txt") as handle:
        handle.write("row\n")
    with atomic_dir(tmp_path / "cache") as folder:
        (folder / "images.npy").write_bytes(b"whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.tmp", "cache", "solution.txt"]
    assert (tmp_path / "cache" / "images.npy").read_bytes() == b"whole"


def test_a_second_writer_waits_for_the_first(tmp_path, capfd):
    out, order = tmp_path / "cache", []
    first_in = threading.Event()

    def first():
        with atomic_dir(out) as folder:
            first_in.set()
            time.sleep(0.5)
            (folder / "who").write_text("first")
            order.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    first_in.wait()
    with atomic_dir(out) as folder:  # flock: each open file is its own holder, threads included
        order.append("second in")
        (folder / "who").write_text("second")
    thread.join()
    assert order == ["first done", "second in"]
    assert (out / "who").read_text() == "second"
    assert f"waiting for another process writing {out}" in capfd.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


def test_a_waiter_locks_the_file_at_the_path_not_the_one_its_holder_removed(tmp_path):
    """The holder unlinks .NAME.lock while still holding it; a waiter blocked on that file must lock anew."""
    out, lock = tmp_path / "e.json", tmp_path / ".e.json.lock"
    holder = output_lock(out)
    holder.__enter__()
    inside, leave = threading.Event(), threading.Event()

    def waiter():
        with output_lock(out):
            inside.set()
            leave.wait(10)

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.3)  # the waiter has opened the lock file and blocks in flock
    holder.__exit__(None, None, None)
    assert inside.wait(10)
    fd = os.open(lock, os.O_RDWR)  # the waiter's lock is the file at the path, so a third writer waits
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)
        leave.set()
        thread.join()


def test_a_filesystem_without_flock_still_writes_atomically(tmp_path, monkeypatch):
    def no_flock(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    with atomic_path(tmp_path / "model.pt") as tmp:
        assert tmp.name.startswith(".model.pt.") and tmp.name != ".model.pt.tmp"  # unique: writers may overlap
        tmp.write_bytes(b"weights")
    assert (tmp_path / "model.pt").read_bytes() == b"weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_raise_like_ctrl_c(signum, tmp_path):
    before = signal.getsignal(signum)
    with pytest.raises(Terminated) as caught:
        with signals_end_like_ctrl_c():
            with atomic_dir(tmp_path / "cache") as folder:
                (folder / "images.npy").write_bytes(b"x")
                os.kill(os.getpid(), signum)
                time.sleep(5)  # the handler raises here
    assert isinstance(caught.value, KeyboardInterrupt) and caught.value.exit_status == 128 + signum
    assert not list(tmp_path.iterdir())
    assert signal.getsignal(signum) is before  # the handler is the caller's again


def test_a_signal_waits_for_the_end_of_a_deferred_block():
    steps = []
    with pytest.raises(Terminated):
        with signals_end_like_ctrl_c():
            with deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.2)
                steps.append("both renames done")
            steps.append("after the block")
    assert steps == ["both renames done"]
