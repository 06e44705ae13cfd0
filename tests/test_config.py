"""The config schema: defaults, one-line errors naming the key, dotted overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

import dataclasses

from facelm.config import Config, load_config, parse_config, validate_config
from facelm.errors import FacelmError

REPO = Path(__file__).resolve().parents[1]


def test_repository_config_is_valid():
    config = load_config(REPO / "config.yaml")
    assert config.budget_mb == 15
    assert config.splits.to_dict() == {"train": "synthetics_train", "val": "aflw_val", "test": "aflw_test"}


def test_defaults_are_filled():
    config = validate_config({"data_dir": "x", "train_sets": ["a"], "models": [{"name": "pfld"}]})
    assert config["results_dir"] == "results"
    assert config["train"]["epochs"] > 0
    assert config["preprocess"]["gamma"] == 1.0


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epochz=3", "unknown key train.epochz"),
        ("budget_mb=big", "key budget_mb"),
        ("preprocess.gamma_mode=sometimes", "key preprocess.gamma_mode"),
        ("folds.k=1", "key folds.k"),
        ("prepare={data/x: raw}", "prepare names 'data/x', which is not in train_sets"),
        ("train_set_options={other: {repeat: 2}}", "train_set_options names 'other', which is not in train_sets"),
        ("train.pose_balance=2", "key train.pose_balance"),
    ],
)
def test_bad_values_are_one_line_errors_naming_the_key(override, message):
    with pytest.raises(FacelmError, match=message) as err:
        load_config(REPO / "config.yaml", [override])
    assert "\n" not in str(err.value)
    assert "config.yaml" in str(err.value)


def test_overrides_set_nested_values():
    config = load_config(REPO / "config.yaml", ["train.epochs=7", "augment.hflip_p=0.0"])
    assert config.train.epochs == 7
    assert config.augment.hflip_p == 0.0


def test_broken_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(FacelmError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(FacelmError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")


def test_every_model_in_the_repo_config_is_registered():
    from facelm.models import is_model

    config = load_config(REPO / "config.yaml")
    names = [m.name for m in config.models] + [config.tune.model.name]
    names += config.ablation.methods
    assert all(is_model(name) for name in names), names



def test_typed_config_is_read_only_and_misspellings_fail():
    config = load_config(REPO / "config.yaml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.train.size = 256
    with pytest.raises(TypeError, match="read-only"):
        config.models[0].kwargs["head"] = "regression"
    with pytest.raises(AttributeError):
        config.train.sizee


def test_updated_copies_are_validated_and_round_trip():
    config = load_config(REPO / "config.yaml")
    changed = config.updated(train={"lr": 0.01}, seed=3)
    assert (changed.train.lr, changed.seed, config.train.lr) == (0.01, 3, 0.002)
    assert parse_config(changed.to_dict()) == changed
    with pytest.raises(FacelmError, match="key train.lr"):
        config.updated(train={"lr": -1})


def test_per_model_train_overrides_are_validated():
    config = parse_config({"data_dir": "x", "train_sets": ["a"],
                           "models": [{"name": "pfld", "train": {"size": 64}}, {"name": "m", "train": {"sise": 1}}]})
    assert config.train_for(config.models[0]).size == 64
    with pytest.raises(FacelmError, match="unknown key train.sise"):
        config.train_for(config.models[1])


def test_typed_sections_match_the_schema():
    """The import-time check compares every section's fields with the schema's keys."""
    import facelm.config as cfg

    def section_keys(node):
        return set(node["properties"])

    assert {f.name for f in dataclasses.fields(Config)} == section_keys(cfg.schema())
    assert {f.name for f in dataclasses.fields(cfg.Train)} == section_keys(cfg.schema()["properties"]["train"])


def test_every_config_error_is_shown_with_suggestions():
    with pytest.raises(FacelmError) as err:
        load_config(REPO / "config.yaml", ["train.epochz=3", "budget_mb=big", "augment.hflip=0.5"])
    text = str(err.value)
    assert "\n" not in text
    assert "unknown key train.epochz (did you mean train.epochs?)" in text
    assert "unknown key augment.hflip (did you mean augment.hflip_p?)" in text and "key budget_mb" in text


def test_the_schema_declares_the_draft_snakemake_validates_with():
    """Snakemake 9 validates with Draft 2020-12 and warns on any other $schema."""
    import yaml
    from jsonschema import Draft202012Validator

    schema = yaml.safe_load((REPO / "src" / "facelm" / "schemas" / "config.schema.yaml").read_text())
    assert schema["$schema"] == Draft202012Validator.META_SCHEMA["$schema"]
