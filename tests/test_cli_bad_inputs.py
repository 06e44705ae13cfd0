"""Every verb of the `facelm` command, handed every kind of bad input a user might give it.

Each (verb, bad input) pair must end with exit status 2, exactly one line on stderr naming the
problem (and, where the case says so, the file), no traceback, no code run from a hostile file,
and no file written or changed anywhere (no half-written output, no leftover temporary file).

The verbs are walked from the CLI itself (:data:`facelm.cli.COMMANDS` and
:func:`facelm.cli.build_parser`): a verb without an entry in :data:`BAD_INPUTS` fails the
test, and the argument cases (unknown option, a non-number for every typed option, every
count given as 0, every required argument missing) are read from each verb's parser, so a new verb or option is
covered the day it is added. Runs in-process (``facelm.cli.main``) with file-descriptor capture,
so C-level messages (OpenCV, libjpeg) count as stderr lines too.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from facelm.cli import COMMANDS, build_parser, main
from facelm.data.limits import positive_int

#: Placeholders in the argument lists below, filled from the ``kit`` fixture (``{out}`` is the
#: case's own empty working folder, where every output is pointed).
#:  missing, empty, corrupt (a garbage .jpg), huge (a header claiming 60000x60000 px), hostile (an
#:  annot.pkl that would run a command), unlabelled, badname (a test image named "a b.jpg"),
#:  model (a real, untrained model.pt), trunc_pt, garbage_pt, hostile_pt, garbage_onnx,
#:  ens_missing (a member without "model"), config (a good config), bad_yaml, unknown_key,
#:  wrong_type, bad_solution, garbage_zip, solution (a valid one for `test`), test, raw_corrupt,
#:  raw_huge, run_garbage, run_no_keys, garbage_db, file (a plain file); and the limits: latin1 (a
#:  Latin-1 config), alias_bomb (billion laughs), deep_yaml / deep_json (nested 40 / 100,000 levels), run_deep,
#:  ens_self (a member naming its own spec), ens_cycle_a (a -> b -> a), ens_inf (weights summing to infinity),
#:  huge_pt (zip members declaring 6 GiB), hostile5 (hostile at pickle protocol 5), selfref (an annot entry
#:  holding itself), deep_annot (an entry nested 100,000 deep), long_line (a 100 KB row), zip_bomb (a member
#:  declaring 3 GiB)
BAD_INPUTS: dict[str, list[tuple[str, list[str], str | None]]] = {
    "validate-config": [
        ("missing", ["{missing}"], "absent"),
        ("yaml syntax", ["{bad_yaml}"], "bad.yaml"),
        ("unknown key", ["{unknown_key}"], "no_such_key"),
        ("wrong type", ["{wrong_type}"], "train"),
        ("bad override", ["{config}", "train.epochs=many"], "train.epochs"),
        ("override unknown key", ["{config}", "nope.x=1"], "nope"),
        ("latin-1 config", ["{latin1}"], "latin1.yaml"),
        ("override syntax error", ["{config}", "train.epochs=[1"], "train.epochs"),
        ("override with a python tag", ["{config}", "train.epochs=!!python/object/apply:os.system [touch {marker}]"],
         "train.epochs"),
        ("override with a binary tag", ["{config}", "train.epochs=!!binary aGk="], "train.epochs"),
        ("alias bomb", ["{alias_bomb}"], "alias_bomb.yaml"),
        ("config nested too deep", ["{deep_yaml}"], "deep.yaml"),
        ("override key nested too deep", ["{config}", "train" + ".x" * 40 + "=1"], "nested deeper"),
    ],
    "make-demo-data": [
        ("out is a file", ["{file}"], "plain.txt"),
        ("negative release", ["{out}/raw", "--release", "-3"], "positive"),
    ],
    "prepare": [
        ("missing", ["{missing}", "{out}/p"], "absent"),
        ("empty", ["{empty}", "{out}/p"], "empty"),
        ("corrupt image", ["{raw_corrupt}", "{out}/p", "--workers", "1"], "000000.png"),
        ("huge header", ["{raw_huge}", "{out}/p", "--workers", "1"], "000000.png"),
    ],
    "check-data": [
        ("missing", ["{missing}"], "absent"),
        ("empty", ["{empty}"], "empty"),
        ("corrupt image", ["{corrupt}"], "broken.jpg"),
        ("huge header", ["{huge}"], "bomb.jpg"),
        ("hostile annot", ["{hostile}"], "annot.pkl"),
        ("hostile annot at protocol 5", ["{hostile5}"], "annot.pkl"),
        ("self-referencing annot", ["{selfref}"], "68x2"),
        ("deeply nested annot", ["{deep_annot}"], "68x2"),
        ("drop-bad without index", ["{corrupt}", "--drop-bad"], "--index"),
        ("report under a plain file", ["{unlabelled}", "--out", "{file}/r.json"], "plain.txt"),
    ],
    "cache": [
        ("missing", ["{missing}", "{out}/c", "--size", "32"], "absent"),
        ("empty", ["{empty}", "{out}/c", "--size", "32"], "empty"),
        ("corrupt image", ["{corrupt}", "{out}/c", "--size", "32", "--workers", "0"], "broken.jpg"),
        ("huge header", ["{huge}", "{out}/c", "--size", "32", "--workers", "0"], "bomb.jpg"),
        ("hostile annot", ["{hostile}", "{out}/c", "--size", "32"], "annot.pkl"),
        ("self-referencing annot", ["{selfref}", "{out}/c", "--size", "32"], "annot.pkl"),
        ("deeply nested annot", ["{deep_annot}", "{out}/c", "--size", "32"], "annot.pkl"),
        ("negative gamma", ["{unlabelled}", "{out}/c", "--size", "32", "--gamma", "-1"], None),
        ("missing index", ["{unlabelled}", "{out}/c", "--size", "32", "--index", "{missing}"], "absent"),
        ("out under a plain file", ["{unlabelled}", "{file}/c", "--size", "32", "--workers", "0"], "plain.txt"),
    ],
    "show-augment": [
        ("missing", ["{missing}", "{out}/a.png"], "absent"),
        ("empty", ["{empty}", "{out}/a.png"], "empty"),
        ("unlabelled", ["{unlabelled}", "{out}/a.png"], "unlabelled"),
        ("hostile annot", ["{hostile}", "{out}/a.png"], "annot.pkl"),
        ("huge header", ["{huge_labelled}", "{out}/a.png", "--n", "1"], "bomb.jpg"),
        ("bad config", ["{unlabelled}", "{out}/a.png", "--config", "{bad_yaml}"], "bad.yaml"),
    ],
    "models": [
        ("size too small for a network", ["--size", "4", "--repeats", "1"], "4x4"),
    ],
    "folds": [
        ("missing config", ["--config", "{missing}"], "absent"),
        ("bad yaml", ["--config", "{bad_yaml}"], "bad.yaml"),
        ("empty train set", ["--config", "{config_empty_train}", "--out", "{out}/f.csv"], "empty"),
        ("hostile train annot", ["--config", "{config_hostile_train}", "--out", "{out}/f.csv"], "annot.pkl"),
    ],
    "train": [
        ("missing config", ["--config", "{missing}"], "absent"),
        ("bad yaml", ["--config", "{bad_yaml}"], "bad.yaml"),
        ("unknown model", ["--config", "{config}", "--model", "nope"], "nope"),
        ("empty data", ["--data", "{empty}", "--val", "{labelled}", "--backbone", "pfld_025"], "empty"),
        ("hostile data", ["--data", "{hostile}", "--val", "{labelled}", "--backbone", "pfld_025"], "annot.pkl"),
        ("unknown backbone", ["--data", "{labelled}", "--val", "{labelled}", "--backbone", "no_such_net"], "no_such_net"),
        ("neither form", [], None),
        ("override syntax error", ["--config", "{config}", "train.epochs=[1"], "train.epochs"),
        ("latin-1 config", ["--config", "{latin1}"], "latin1.yaml"),
    ],
    "relabel": [
        ("missing source", ["{missing}", "{out}/r", "--teacher", "{model}"], "absent"),
        ("teacher files missing", ["{labelled}", "{out}/r", "--teacher", "3ddfa_v2:{missing}"], "absent"),
        ("malformed teacher spec", ["{labelled}", "{out}/r", "--teacher", "3ddfa_v2:{labelled},colour=1"], "colour"),
        ("hostile annot", ["{hostile}", "{out}/r", "--teacher", "{model}"], "annot.pkl"),
        ("jaw without labels", ["{unlabelled}", "{out}/r", "--teacher", "{model}", "--points", "jaw"], "labels"),
    ],
    "photo-set": [
        ("missing source", ["{missing}", "{out}/p", "--teacher", "3ddfa_v2:{missing}", "--eval", "{labelled}"], "absent"),
        ("no evaluation folder", ["{labelled}", "{out}/p", "--teacher", "3ddfa_v2:{missing}"], "--eval"),
        ("evaluation folder missing", ["{labelled}", "{out}/p", "--teacher", "3ddfa_v2:{missing}", "--eval", "{missing}"],
         "absent"),
        ("teacher files missing", ["{labelled}", "{out}/p", "--teacher", "3ddfa_v2:{missing}", "--eval", "{labelled}"],
         "absent"),
        ("malformed teacher spec", ["{labelled}", "{out}/p", "--teacher", "3ddfa_v2:{labelled},colour=1", "--eval",
                                    "{labelled}"], "colour"),
    ],
    "synthesize-poses": [
        ("missing face model", ["{labelled}", "{out}/p", "--bfm", "{missing}"], "absent"),
        ("unlabelled folder", ["{unlabelled}", "{out}/p", "--bfm", "{missing}"], "unlabelled"),
        ("hostile annot", ["{hostile}", "{out}/p", "--bfm", "{missing}"], "annot.pkl"),
        ("yaw range reversed", ["{labelled}", "{out}/p", "--bfm", "{missing}", "--yaw-min", "80", "--yaw-max", "20"], "yaw range"),
    ],
    "evaluate": [
        ("missing model", ["{missing}", "{labelled}"], "absent"),
        ("garbage model", ["{garbage_pt}", "{labelled}"], "garbage.pt"),
        ("truncated model", ["{trunc_pt}", "{labelled}"], "trunc.pt"),
        ("hostile model", ["{hostile_pt}", "{labelled}"], "hostile.pt"),
        ("garbage onnx", ["{garbage_onnx}", "{labelled}"], "garbage.onnx"),
        ("ensemble member without model", ["{ens_missing}", "{labelled}"], "ens.json"),
        ("empty folder", ["{model}", "{empty}"], "empty"),
        ("unlabelled folder", ["{model}", "{unlabelled}"], "unlabelled"),
        ("hostile annot", ["{model}", "{hostile}"], "annot.pkl"),
        ("huge header", ["{model}", "{huge_labelled}"], "bomb.jpg"),
        ("ensemble naming itself", ["{ens_self}", "{labelled}"], "ens_self.json"),
        ("ensemble cycle", ["{ens_cycle_a}", "{labelled}"], "ens_cycle"),
        ("ensemble weights overflow", ["{ens_inf}", "{labelled}"], "ens_inf.json"),
        ("ensemble spec nested too deep", ["{deep_json}", "{labelled}"], "deep.json"),
        ("model unpacking past the limit", ["{huge_pt}", "{labelled}"], "huge.pt"),
        ("self-referencing annot", ["{model}", "{selfref}"], "annot.pkl"),
        ("face model missing", ["{model}", "{labelled}", "--face-model", "{missing}"], "bfm68_bases.npz"),
    ],
    "model-card": [
        ("missing model", ["{missing}", "{labelled}", "--out", "{out}/c.md"], "absent"),
        ("face model missing", ["{model}", "{labelled}", "--out", "{out}/c.md", "--face-model", "{missing}"], "bfm68_bases.npz"),
        ("garbage model", ["{garbage_pt}", "{labelled}", "--out", "{out}/c.md"], "garbage.pt"),
        ("hostile model", ["{hostile_pt}", "{labelled}", "--out", "{out}/c.md"], "hostile.pt"),
        ("garbage onnx", ["{garbage_onnx}", "{labelled}", "--out", "{out}/c.md"], "garbage.onnx"),
        ("ensemble member without model", ["{ens_missing}", "{labelled}", "--out", "{out}/c.md"], "ens.json"),
        ("empty folder", ["{model}", "{empty}", "--out", "{out}/c.md"], "empty"),
        ("unlabelled folder", ["{model}", "{unlabelled}", "--out", "{out}/c.md"], "unlabelled"),
        ("hostile annot", ["{model}", "{hostile}", "--out", "{out}/c.md"], "annot.pkl"),
    ],
    "distill": [
        ("missing config", ["--config", "{missing}"], "absent"),
        ("bad yaml", ["--config", "{bad_yaml}"], "bad.yaml"),
        ("missing teacher", ["--config", "{config}", "--teacher", "{missing}"], "absent"),
        ("teacher without model key", ["--config", "{config}", "--teacher", "{ens_missing}"], "ens.json"),
        ("garbage teacher", ["--config", "{config}", "--teacher", "{garbage_pt}"], "garbage.pt"),
        ("hostile teacher", ["--config", "{config}", "--teacher", "{hostile_pt}"], "hostile.pt"),
    ],
    "tune": [
        ("missing config", ["--config", "{missing}"], "absent"),
        ("bad yaml", ["--config", "{bad_yaml}"], "bad.yaml"),
        ("garbage study db", ["--config", "{config}", "--storage", "sqlite:///{garbage_db}", "--trials", "1"], "study.db"),
        ("tuned config without --best", ["--config", "{config}", "--tuned", "{out}/t.yaml"], "--best"),
    ],
    "ensemble": [
        ("missing config", ["--config", "{missing}", "--runs", "{missing}"], "absent"),
        ("missing run", ["--config", "{config}", "--runs", "{missing}"], "absent"),
        ("garbage run", ["--config", "{config}", "--runs", "{run_garbage}", "--out", "{out}/e.json"], "run_garbage"),
        ("run without keys", ["--config", "{config}", "--runs", "{run_no_keys}", "--out", "{out}/e.json"], "metrics.json"),
        ("run metrics nested too deep", ["--config", "{config}", "--runs", "{run_deep}", "--out", "{out}/e.json"],
         "run_deep"),
    ],
    "submit": [
        ("missing model", ["--model", "{missing}", "--test", "{test}", "--out-dir", "{out}/s"], "absent"),
        ("garbage model", ["--model", "{garbage_pt}", "--test", "{test}", "--out-dir", "{out}/s"], "garbage.pt"),
        ("hostile model", ["--model", "{hostile_pt}", "--test", "{test}", "--out-dir", "{out}/s"], "hostile.pt"),
        ("garbage onnx", ["--model", "{garbage_onnx}", "--test", "{test}", "--out-dir", "{out}/s"], "garbage.onnx"),
        ("ensemble member without model", ["--model", "{ens_missing}", "--test", "{test}", "--out-dir", "{out}/s"],
         "ens.json"),
        ("missing test", ["--model", "{model}", "--test", "{missing}", "--out-dir", "{out}/s"], "absent"),
        ("empty test", ["--model", "{model}", "--test", "{empty}", "--out-dir", "{out}/s"], "empty"),
        ("corrupt test image", ["--model", "{model}", "--test", "{corrupt}", "--out-dir", "{out}/s"], "broken.jpg"),
        ("huge test image", ["--model", "{model}", "--test", "{huge}", "--out-dir", "{out}/s"], "bomb.jpg"),
        ("unwritable test name", ["--model", "{model}", "--test", "{badname}", "--out-dir", "{out}/s"], "a b.jpg"),
        ("hostile val annot", ["--model", "{model}", "--test", "{test}", "--val", "{hostile}", "--out-dir", "{out}/s"],
         "annot.pkl"),
        ("bad config", ["--config", "{bad_yaml}", "--model", "{model}", "--test", "{test}", "--out-dir", "{out}/s"],
         "bad.yaml"),
        ("ensemble naming itself", ["--model", "{ens_self}", "--test", "{test}", "--out-dir", "{out}/s"], "ens_self.json"),
        ("ensemble weights overflow", ["--model", "{ens_inf}", "--test", "{test}", "--out-dir", "{out}/s"], "ens_inf.json"),
    ],
    "validate-submission": [
        ("missing solution", ["{missing}", "{test}"], "absent"),
        ("bad solution", ["{bad_solution}", "{test}"], "bad_solution.txt"),
        ("garbage zip", ["{garbage_zip}", "{test}"], "solution.zip"),
        ("missing test", ["{solution}", "{missing}"], "absent"),
        ("empty test", ["{solution}", "{empty}"], "empty"),
        ("unwritable test name", ["{solution}", "{badname}"], "a b.jpg"),
        ("row over the line limit", ["{long_line}", "{test}"], "long_line.txt"),
        ("zip unpacking past the limit", ["{zip_bomb}", "{test}"], "bomb.zip"),
    ],
    "score": [
        ("missing solution", ["{missing}", "{labelled}/annot.pkl"], "absent"),
        ("bad solution", ["{bad_solution}", "{labelled}/annot.pkl"], "bad_solution.txt"),
        ("missing annot", ["{solution}", "{missing}"], "absent"),
        ("hostile annot", ["{solution}", "{hostile}/annot.pkl"], "annot.pkl"),
        ("solution for other images", ["{solution}", "{labelled}/annot.pkl"], "solution.txt"),
        ("row over the line limit", ["{long_line}", "{labelled}/annot.pkl"], "long_line.txt"),
        ("deeply nested annot", ["{solution}", "{deep_annot}/annot.pkl"], "annot.pkl"),
    ],
    "report": [
        ("missing config", ["--config", "{missing}"], "absent"),
        ("bad yaml", ["--config", "{bad_yaml}"], "bad.yaml"),
        ("unknown key", ["--config", "{unknown_key}"], "no_such_key"),
    ],
    "export": [
        ("missing model", ["{missing}", "{out}/m.onnx"], "absent"),
        ("garbage model", ["{garbage_pt}", "{out}/m.onnx"], "garbage.pt"),
        ("truncated model", ["{trunc_pt}", "{out}/m.onnx"], "trunc.pt"),
        ("hostile model", ["{hostile_pt}", "{out}/m.onnx"], "hostile.pt"),
        ("ensemble member without model", ["{ens_missing}", "{out}/m.onnx"], "ens.json"),
        ("ensemble naming itself", ["{ens_self}", "{out}/m.onnx"], "ens_self.json"),
        ("ensemble weights overflow", ["{ens_inf}", "{out}/m.onnx"], "ens_inf.json"),
        ("model unpacking past the limit", ["{huge_pt}", "{out}/m.onnx"], "huge.pt"),
    ],
    "predict": [
        ("missing model", ["{labelled}", "--model", "{missing}", "--out", "{out}/p"], "absent"),
        ("garbage model", ["{labelled}", "--model", "{garbage_pt}", "--out", "{out}/p"], "garbage.pt"),
        ("truncated model", ["{labelled}", "--model", "{trunc_pt}", "--out", "{out}/p"], "trunc.pt"),
        ("hostile model", ["{labelled}", "--model", "{hostile_pt}", "--out", "{out}/p"], "hostile.pt"),
        ("garbage onnx", ["{labelled}", "--model", "{garbage_onnx}", "--out", "{out}/p"], "garbage.onnx"),
        ("ensemble member without model", ["{labelled}", "--model", "{ens_missing}", "--out", "{out}/p"], "ens.json"),
        ("missing input", ["{missing}", "--model", "{model}", "--out", "{out}/p"], "absent"),
        ("empty folder", ["{empty}", "--model", "{model}", "--out", "{out}/p"], "empty"),
        ("corrupt image", ["{corrupt}", "--model", "{model}", "--out", "{out}/p", "--crops"], "broken.jpg"),
        ("huge header", ["{huge}", "--model", "{model}", "--out", "{out}/p", "--crops"], "bomb.jpg"),
        ("unknown detector", ["{labelled}", "--model", "{model}", "--out", "{out}/p", "--detector", "nope"], "nope"),
    ],
    "ship": [
        ("missing model", ["{missing}", "--name", "x", "--val", "{labelled}", "--terms", "t", "--out", "{out}/w"], "absent"),
        ("garbage onnx", ["{garbage_onnx}", "--name", "x", "--val", "{labelled}", "--terms", "t", "--out", "{out}/w"],
         "garbage.onnx"),
        ("bad name", ["{model}", "--name", "Fast One", "--val", "{labelled}", "--terms", "t", "--out", "{out}/w"], "name"),
        ("unlabelled val", ["{model}", "--name", "x", "--val", "{unlabelled}", "--terms", "t", "--out", "{out}/w"],
         "unlabelled"),
    ],
    "ablation": [
        ("missing config", ["--config", "{missing}"], "absent"),
        ("bad yaml", ["--config", "{bad_yaml}"], "bad.yaml"),
        ("bad override", ["--config", "{config}", "train.epochs=many"], "train.epochs"),
        ("override syntax error", ["--config", "{config}", "train.epochs=[1"], "train.epochs"),
    ],
}


class _RunsCode:
    """Unpickling this would run ``touch MARKER``: the hostile payload of annot.pkl and model files."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _image(path, size=64, seed=0):
    import cv2

    cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


def _arg_cases(command: str) -> list[tuple[str, list[str], str | None]]:
    """Bad-argument cases read from the verb's parser: unknown option, non-numbers, zero counts, missing required."""
    parser = build_parser(command)
    cases = [("unknown option", ["--no-such-option"], None)]  # argparse may name a missing required one first
    for action in parser._actions:
        if action.option_strings and action.type in (int, float, positive_int):
            cases.append((f"{action.option_strings[-1]} not a number", [action.option_strings[-1], "x1"], "x1"))
        if action.option_strings and action.type is positive_int:
            cases.append((f"{action.option_strings[-1]} zero", [action.option_strings[-1], "0"], "positive"))
    if any(a.required and a.nargs != argparse.ZERO_OR_MORE for a in parser._actions):
        cases.append(("required missing", [], "required"))
    return cases


def _all_cases() -> list[tuple[str, str, list[str], str | None]]:
    return [(command, name, argv, mention) for command in sorted(COMMANDS)
            for name, argv, mention in BAD_INPUTS.get(command, []) + _arg_cases(command)]


CASES = _all_cases()


def test_every_verb_has_bad_inputs():
    missing = sorted(set(COMMANDS) - set(BAD_INPUTS))
    assert not missing, f"verbs without bad inputs in BAD_INPUTS: {missing}"
    assert not set(BAD_INPUTS) - set(COMMANDS), "BAD_INPUTS names verbs the CLI does not have"
    print(f"{len(CASES)} (verb, bad input) pairs over {len(COMMANDS)} verbs")


@pytest.fixture(scope="module")
def kit(tmp_path_factory, demo_data, huge_header_jpeg):
    """Every kind of bad input once, plus the good files some cases need to reach the bad one."""
    from facelm.data.annot import save_annot
    from facelm.models import create_model
    from facelm.models.checkpoint import save_checkpoint

    root = tmp_path_factory.mktemp("kit")
    p = {"missing": root / "absent", "marker": root / "PWNED"}
    for name in ("empty", "corrupt", "huge", "hostile", "unlabelled", "badname", "huge_labelled", "test",
                 "raw_corrupt", "raw_huge", "run_garbage", "run_no_keys"):
        p[name] = root / name
        p[name].mkdir()
    (p["corrupt"] / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    (p["huge"] / "bomb.jpg").write_bytes(huge_header_jpeg)
    _image(p["unlabelled"] / "a.jpg")
    shutil.copy(p["unlabelled"] / "a.jpg", p["badname"] / "a b.jpg")
    p["labelled"] = demo_data / "aflw_val"
    shutil.copytree(demo_data / "aflw_test", p["test"], dirs_exist_ok=True)
    shutil.copy(p["labelled"] / "000000.jpg", p["hostile"] / "000000.jpg")
    (p["hostile"] / "annot.pkl").write_bytes(pickle.dumps(([ "000000.jpg"], _RunsCode(p["marker"]))))
    (p["huge_labelled"] / "bomb.jpg").write_bytes(huge_header_jpeg)
    save_annot(p["huge_labelled"] / "annot.pkl", ["bomb.jpg"], np.full((1, 68, 2), 100.0, np.float32))
    for raw in ("raw_corrupt", "raw_huge"):
        (p[raw] / "000000_ldmks.txt").write_text("".join(f"{100 + i} {120 + i}\n" for i in range(70)))
    (p["raw_corrupt"] / "000000.png").write_bytes(b"\x89PNG garbage")
    (p["raw_huge"] / "000000.png").write_bytes(huge_header_jpeg)

    model = create_model("pfld_025")
    p["model"] = root / "model.pt"
    save_checkpoint(p["model"], model, {"input_size": 64, "gamma": 1.0, "gamma_mode": "fixed"})
    p["trunc_pt"] = root / "trunc.pt"
    p["trunc_pt"].write_bytes(p["model"].read_bytes()[:5000])
    p["garbage_pt"] = root / "garbage.pt"
    p["garbage_pt"].write_bytes(b"not a model at all")
    p["hostile_pt"] = root / "hostile.pt"
    torch.save({"format": "facelm-model-1", "meta": _RunsCode(p["marker"])}, p["hostile_pt"])
    p["garbage_onnx"] = root / "garbage.onnx"
    p["garbage_onnx"].write_bytes(b"not onnx")
    (root / "garbage.json").write_text(json.dumps({"input_size": 64}))  # its model card, so the graph is read
    p["ens_missing"] = root / "ens.json"
    p["ens_missing"].write_text(json.dumps({"members": [{"model": "model.pt", "weight": 0.5}, {"weight": 0.5}]}))

    good = {"data_dir": str(demo_data), "train_sets": ["synthetics_train"], "results_dir": "results",
            "submissions_dir": "submissions", "models": [{"name": "pfld_025"}],
            "train": {"size": 32, "epochs": 1, "batch_size": 8, "workers": 0}}
    configs = {"config": good, "unknown_key": {**good, "no_such_key": 1},
               "wrong_type": {**good, "train": {"epochs": "many"}},
               "config_empty_train": {**good, "train_sets": [str(p["empty"])]},
               "config_hostile_train": {**good, "train_sets": [str(p["hostile"])]}}
    for name, config in configs.items():
        p[name] = root / f"{name}.yaml"
        p[name].write_text(yaml.safe_dump(config))
    p["bad_yaml"] = root / "bad.yaml"
    p["bad_yaml"].write_text("train: [unclosed\n  epochs: 1\n")
    p["bad_solution"] = root / "bad_solution.txt"
    p["bad_solution"].write_text("000000.jpg 1 2 3\n")
    p["garbage_zip"] = root / "solution.zip"
    p["garbage_zip"].write_bytes(b"PK\x03\x04 not a zip")
    p["solution"] = root / "solution.txt"
    names = sorted(f.name for f in p["test"].iterdir())
    p["solution"].write_text("".join(f"{n} " + " ".join(["1.0"] * 136) + "\n" for n in names))
    (p["run_garbage"] / "metrics.json").write_text("{not json")
    (p["run_no_keys"] / "metrics.json").write_text(json.dumps({"fold": None}))
    np.save(p["run_no_keys"] / "val_pred.npy", np.zeros((12, 68, 2), np.float32))
    p["garbage_db"] = root / "study.db"
    p["garbage_db"].write_bytes(b"this is not SQLite" * 10)
    p["file"] = root / "plain.txt"
    p["file"].write_text("a file where a folder should be")
    _limit_kit(root, p, good)
    return root, {k: str(v) for k, v in p.items()}


def _nested(depth: int) -> list:
    """A list nested ``depth`` levels deep, built without recursion."""
    inner: list = []
    for _ in range(depth):
        inner = [inner]
    return inner


def _patch_zip_sizes(path, members: int, size: int) -> None:
    """Make the first ``members`` central-directory entries of a zip declare ``size`` uncompressed bytes."""
    data = bytearray(path.read_bytes())
    at = 0
    for _ in range(members):
        at = data.index(b"PK\x01\x02", at)
        data[at + 24 : at + 28] = size.to_bytes(4, "little")
        at += 4
    path.write_bytes(bytes(data))


def _limit_kit(root, p, good) -> None:
    """The files that reach a limit: odd encodings, expansion, nesting, cycles, overflow, oversize."""
    import zipfile

    p["latin1"] = root / "latin1.yaml"
    p["latin1"].write_bytes(yaml.safe_dump(good).encode() + "# caf\u00e9\n".encode("latin-1"))
    p["alias_bomb"] = root / "alias_bomb.yaml"
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    p["alias_bomb"].write_text(yaml.safe_dump(good) + "\n".join(levels) + "\n")
    p["deep_yaml"] = root / "deep.yaml"
    p["deep_yaml"].write_text(yaml.safe_dump(good) + "x: " + "[" * 40 + "]" * 40 + "\n")
    p["deep_json"] = root / "deep.json"
    p["deep_json"].write_text('{"members": ' + "[" * 100_000 + "]" * 100_000 + "}")
    p["run_deep"] = root / "run_deep"
    p["run_deep"].mkdir()
    (p["run_deep"] / "metrics.json").write_text(json.dumps({"model": _nested(50)}))
    np.save(p["run_deep"] / "val_pred.npy", np.zeros((12, 68, 2), np.float32))
    members = {"ens_self": [{"model": "ens_self.json", "weight": 1}], "ens_cycle_a": [{"model": "ens_cycle_b.json", "weight": 1}],
               "ens_cycle_b": [{"model": "ens_cycle_a.json", "weight": 1}],
               "ens_inf": [{"model": "model.pt", "weight": 1e308}, {"model": "model.pt", "weight": 1e308}]}
    for name, entries in members.items():
        p[name] = root / f"{name}.json"
        p[name].write_text(json.dumps({"members": entries}))
    p["huge_pt"] = root / "huge.pt"
    shutil.copy(p["model"], p["huge_pt"])
    _patch_zip_sizes(p["huge_pt"], 2, 3 * 2**30)
    looped: list = []
    looped.append(looped)
    deep = 100_000  # names, then a landmark list holding one entry nested `deep` lists deep (pickle.dumps would recurse)
    deep_pickle = (b"\x80\x02" + pickle.dumps(["000000.jpg"], protocol=2)[2:-1] + b"]" + b"]" * deep
                   + pickle.APPEND * deep + pickle.TUPLE2 + pickle.STOP)
    annots = {"hostile5": pickle.dumps((["000000.jpg"], _RunsCode(p["marker"])), protocol=5),
              "selfref": pickle.dumps((["000000.jpg"], [looped]), protocol=pickle.HIGHEST_PROTOCOL), "deep_annot": deep_pickle}
    for name, data in annots.items():
        p[name] = root / name
        p[name].mkdir()
        shutil.copy(p["labelled"] / "000000.jpg", p[name] / "000000.jpg")
        (p[name] / "annot.pkl").write_bytes(data)
    p["long_line"] = root / "long_line.txt"
    p["long_line"].write_text("000000.jpg " + " ".join(["1.0"] * 30_000) + "\n")
    p["zip_bomb"] = root / "bomb.zip"
    with zipfile.ZipFile(p["zip_bomb"], "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("solution.txt", Path(p["solution"]).read_text())
    _patch_zip_sizes(p["zip_bomb"], 1, 3 * 2**30)


def _snapshot(folder) -> dict[str, tuple[int, int]]:
    return {str(f): (f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(folder.rglob("*")) if f.is_file()}


@pytest.mark.parametrize("command, name, argv, mention", CASES, ids=[f"{c}-{n}" for c, n, _, _ in CASES])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(command, name, argv, mention, kit, tmp_path, monkeypatch,
                                                          capfd):
    root, paths = kit
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    before = _snapshot(root)
    status = main([command, *(a.format(out=work, **paths) for a in argv)])
    out, err = capfd.readouterr()
    lines = err.strip().splitlines()
    assert status == 2, f"exit {status}; stderr: {err}; stdout: {out[-500:]}"
    assert len(lines) == 1, f"stderr has {len(lines)} lines:\n{err}"
    assert "Traceback" not in err and lines[0].startswith(f"facelm {command}")
    if mention:
        assert mention in lines[0], lines[0]
    assert not os.path.exists(paths["marker"]), "a hostile file ran code"
    left = [str(f.relative_to(work)) for f in work.rglob("*") if f.is_file()]
    assert not left, f"files left behind: {left}"
    assert _snapshot(root) == before, "an input was changed"


@pytest.mark.parametrize("command, name", [("predict", "huge header"), ("check-data", "empty")])
def test_a_real_process_behaves_the_same(command, name, kit, tmp_path):
    """The issue's own examples, through `python -m facelm` (interpreter start-up and exit included)."""
    import subprocess
    import sys

    root, paths = kit
    argv = next(a for n, a, _ in BAD_INPUTS[command] if n == name)
    result = subprocess.run([sys.executable, "-m", "facelm", command, *(a.format(out=tmp_path, **paths) for a in argv)],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr and not any(tmp_path.rglob("*.*"))
