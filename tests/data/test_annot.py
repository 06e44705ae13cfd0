"""annot.pkl is untrusted: only plain containers, numbers, strings and numpy arrays load."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from facelm.data.annot import load_annot, save_annot
from facelm.errors import FacelmError


class RunsCode:
    """A pickle payload that would create a file if it were ever unpickled normally."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_round_trip_with_numpy_and_lists(tmp_path):
    pts = np.random.default_rng(0).uniform(0, 384, (3, 68, 2)).astype(np.float32)
    save_annot(tmp_path / "annot.pkl", ["a.jpg", "b.jpg", "c.jpg"], pts)
    names, loaded = load_annot(tmp_path / "annot.pkl")
    assert names == ["a.jpg", "b.jpg", "c.jpg"] and np.allclose(loaded, pts)
    (tmp_path / "lists.pkl").write_bytes(pickle.dumps((["x.jpg"], [pts[0].tolist()])))
    assert load_annot(tmp_path / "lists.pkl")[1].shape == (1, 68, 2)
    (tmp_path / "arrays.pkl").write_bytes(pickle.dumps((["x.jpg"], [pts[0]])))
    assert load_annot(tmp_path / "arrays.pkl")[1].shape == (1, 68, 2)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_plain_data_and_numpy_load_at_every_pickle_protocol(tmp_path, protocol):
    pts = np.random.default_rng(protocol).uniform(0, 384, (2, 68, 2)).astype(np.float32)
    path = tmp_path / "annot.pkl"
    for landmarks in (list(pts), pts, pts.astype(np.float64), pts.tolist(), [[[np.float32(v) for v in p] for p in f] for f in pts]):
        path.write_bytes(pickle.dumps((["a.jpg", "b.jpg"], landmarks), protocol=protocol))
        assert np.allclose(load_annot(path)[1], pts)
    numpy1 = pickle.dumps((["a.jpg", "b.jpg"], list(pts)), protocol=min(protocol, 2)).replace(b"numpy._core", b"numpy.core")
    path.write_bytes(numpy1)  # as numpy 1.x names its functions
    assert np.allclose(load_annot(path)[1], pts)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_code_is_refused_at_every_pickle_protocol(tmp_path, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "annot.pkl"
    path.write_bytes(pickle.dumps((["a.jpg"], [RunsCode(marker)]), protocol=protocol))
    with pytest.raises(FacelmError, match="refused"):
        load_annot(path)
    assert not marker.exists()


@pytest.mark.parametrize("payload", [
    # _codecs.encode with a codec other than latin-1 (zlib_codec would compress: other work than bytes)
    b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\n\x00\x00\x00zlib_codec\x86R.",
    # numpy's _reconstruct asked for a 2**40-element array (memory the file does not hold)
    b"\x80\x02cnumpy._core.multiarray\n_reconstruct\ncnumpy\nndarray\n\x8a\x06\x00\x00\x00\x00\x00\x01\x85C\x01b\x87R.",
], ids=["other codec", "huge empty array"])
def test_allowed_globals_only_rebuild_what_the_file_holds(tmp_path, payload):
    path = tmp_path / "annot.pkl"
    path.write_bytes(payload)
    with pytest.raises(FacelmError, match="refused"):
        load_annot(path)


def test_a_pickle_that_runs_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "annot.pkl"
    path.write_bytes(pickle.dumps((["a.jpg"], [RunsCode(marker)])))
    with pytest.raises(FacelmError, match="refused") as err:
        load_annot(path)
    assert not marker.exists()
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_other_classes_are_refused(tmp_path):
    path = tmp_path / "annot.pkl"
    path.write_bytes(pickle.dumps((["a.jpg"], [{1, 2}], __import__("collections").OrderedDict())))
    with pytest.raises(FacelmError):
        load_annot(path)


@pytest.mark.parametrize("payload, message", [
    (b"", "empty"),
    (pickle.dumps((["a.jpg"], [[[0, 0]] * 68]))[:-5], "annot"),
    (pickle.dumps({"names": []}), "annot"),
])
def test_broken_files_are_one_line_errors(tmp_path, payload, message):
    path = tmp_path / "annot.pkl"
    path.write_bytes(payload)
    with pytest.raises(FacelmError, match=message) as err:
        load_annot(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)
