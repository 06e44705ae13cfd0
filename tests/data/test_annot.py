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
