"""check-data: every bad-input kind is reported; --drop-bad writes a clean index."""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from facelm.data.annot import load_annot
from facelm.data.checks import PROBLEM_TEXT, check_folder


def run_check(*args):
    return subprocess.run([sys.executable, "-m", "facelm", "check-data", *map(str, args)], capture_output=True, text=True)


@pytest.fixture
def folder(demo_data, tmp_path):
    out = tmp_path / "val"
    shutil.copytree(demo_data / "aflw_val", out)
    return out


def _relabel(folder, edit):
    names, pts = load_annot(folder / "annot.pkl")
    names, entries = edit(list(names), [p.tolist() for p in pts])
    (folder / "annot.pkl").write_bytes(pickle.dumps((names, entries)))


def test_clean_folder_passes(folder):
    report = check_folder(folder)
    assert report["n_images"] == report["n_valid"] == 12 and not report["problems"]
    assert 150 < report["stats"]["box_size"]["mean"] < 250


def _empty(f): (f / "000000.jpg").write_bytes(b"")
def _unreadable(f): (f / "000000.jpg").write_bytes(b"not a jpeg at all")
def _truncated(f): (f / "000000.jpg").write_bytes((f / "000000.jpg").read_bytes()[:3000])
def _wrong_size(f): cv2.imwrite(str(f / "000000.jpg"), np.zeros((200, 384, 3), np.uint8))
def _wrong_channels(f): cv2.imwrite(str(f / "000000.jpg"), np.zeros((384, 384), np.uint8))
def _label_without_image(f): (f / "000000.jpg").unlink()
def _image_without_label(f): shutil.copy(f / "000000.jpg", f / "extra.jpg")
def _duplicate(f): _relabel(f, lambda n, e: (n + [n[0]], e + [e[0]]))
def _bad_shape(f): _relabel(f, lambda n, e: (n, [e[0][:60]] + e[1:]))
def _nan(f): _relabel(f, lambda n, e: (n, [[[float("nan"), 1.0]] * 68] + e[1:]))
def _far(f): _relabel(f, lambda n, e: (n, [[[2000.0, 10.0]] * 68] + e[1:]))


@pytest.mark.parametrize("breaker, kind", [
    (_empty, "empty_file"), (_unreadable, "unreadable"), (_truncated, "truncated"), (_wrong_size, "wrong_size"),
    (_wrong_channels, "wrong_channels"), (_label_without_image, "label_without_image"),
    (_image_without_label, "image_without_label"), (_duplicate, "duplicate_name"), (_bad_shape, "bad_shape"),
    (_nan, "non_finite"), (_far, "far_outside"),
])
def test_each_problem_is_reported_and_fails(folder, tmp_path, breaker, kind):
    breaker(folder)
    report = check_folder(folder)
    assert kind in report["problems"], report["problems"]
    result = run_check(folder, "--out", tmp_path / "r.json")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert all(PROBLEM_TEXT[kind] in result.stderr for kind in report["problems"])


def test_huge_header_is_refused_before_decoding(folder, huge_header_jpeg):
    (folder / "000000.jpg").write_bytes(huge_header_jpeg)
    assert check_folder(folder)["problems"] == {"over_limits": ["000000.jpg"]}


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_check(tmp_path / "empty")
    assert result.returncode == 2 and "no images" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_drop_bad_writes_a_clean_index(folder, tmp_path):
    _nan(folder)
    result = run_check(folder, "--drop-bad", "--out", tmp_path / "r.json")
    assert result.returncode == 0, result.stderr
    index = (tmp_path / "r.index").read_text().split()
    assert len(index) == 11 and "000000.jpg" not in index


def test_drop_bad_comes_from_the_config_file_the_workflow_passes(folder, tmp_path):
    """The check_data rule passes --config (check.drop_bad), like every rule that reads a config value."""
    import yaml

    _nan(folder)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path), "train_sets": ["val"], "models": [{"name": "pfld_025"}],
                                      "check": {"drop_bad": True}}))
    result = run_check(folder, "--config", config, "--out", tmp_path / "r.json")
    assert result.returncode == 0, result.stderr
    assert len((tmp_path / "r.index").read_text().split()) == 11
    refused = run_check(folder, "check.drop_bad=false", "--config", config, "--out", tmp_path / "s.json")
    assert refused.returncode == 2 and "--drop-bad keeps the valid images" in refused.stderr


def test_unlabelled_folder(demo_data):
    report = check_folder(demo_data / "aflw_test")
    assert not report["labelled"] and report["n_images"] == 10 and not report["problems"]


def test_real_validation_and_test_sets(aflw_val, aflw_test):
    result = run_check(aflw_val)
    assert result.returncode == 0 and "199 labelled images, all valid" in result.stdout
    result = run_check(aflw_test)
    assert result.returncode == 0 and "1790 unlabelled images, all valid" in result.stdout
