"""Loading, validating and typing ``config.yaml``.

The JSON schema in ``facelm/schemas/config.schema.yaml`` is the single description of
every setting; Snakemake validates the config against it (``snakemake.utils.validate``)
before any rule runs, and the ``facelm`` CLI does the same through :func:`load_config`.
Defaults declared in the schema are filled in.

Code receives the validated config as a :class:`Config`: frozen dataclasses built from the
validated dict, so it reads ``cfg.train.size`` and a misspelt setting is an AttributeError,
not a silent ``.get`` default. The dataclasses mirror the schema; :func:`_check_against_schema`
runs at import and refuses any field the schema does not declare (or a schema key with no
field), so the schema stays the one source of the keys.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import os
import typing
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from facelm.errors import FacelmError

SCHEMA_PATH = Path(__file__).with_name("schemas") / "config.schema.yaml"


#: outside teacher kinds (their loaders: facelm.models.teachers); here so that the DAG and the
#: config checks recognise a teacher spec without importing torch
TEACHER_KINDS = ("3ddfa_v2",)


def is_teacher_spec(text: str) -> bool:
    """Is ``text`` an outside teacher spec ``KIND:PATH[,option=value...]``?"""
    kind, sep, _ = str(text).partition(":")
    return bool(sep) and kind in TEACHER_KINDS


@lru_cache(maxsize=1)
def schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _fill_defaults(value: Any, node: dict, root: dict) -> Any:
    """Fill ``default`` values of the schema into ``value`` (recursively, objects only)."""
    if "$ref" in node:
        node = root["definitions"][node["$ref"].rsplit("/", 1)[-1]]
    if node.get("type") != "object" or not isinstance(value, dict):
        return value
    for key, sub in node.get("properties", {}).items():
        if key not in value and "default" in sub:
            value[key] = copy.deepcopy(sub["default"])
        elif key not in value and sub.get("type") == "object" and "properties" in sub:
            value[key] = {}  # an omitted section still gets its defaults
        if key in value:
            value[key] = _fill_defaults(value[key], sub, root)
    return value


def _error_line(err: jsonschema.ValidationError) -> str:
    """One schema error as text; an unknown key names the closest known keys ("did you mean")."""
    where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
    if err.validator == "additionalProperties":
        known = list(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(known))
        prefix = where + "." if err.absolute_path else ""
        return "; ".join(f"unknown key {prefix}{key}" + "".join(f" (did you mean {prefix}{m}?)" for m in
                                                                difflib.get_close_matches(key, known, n=1))
                         for key in extra) or err.message
    return f"key {where}: {err.message}"


def validate_config(config: dict, source: str | os.PathLike = "config") -> dict:
    """Validate ``config`` (a dict) in place, fill schema defaults, and return it."""
    root = schema()
    validator = jsonschema.Draft202012Validator(root)
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:  # every error, on one line
        raise FacelmError(f"invalid config: {'; '.join(_error_line(err) for err in errors)}", source)
    config = _fill_defaults(config, root, root)
    made_by = {}
    for key in ("train_set_options", "prepare", "relabel", "photo_sets", "pose_synthesis"):
        stray = sorted(set(config[key]) - set(config["train_sets"]))
        if stray:
            raise FacelmError(f"invalid config: {key} names {stray[0]!r}, which is not in train_sets", source)
        if key != "train_set_options":
            for entry in config[key]:
                if entry in made_by:
                    raise FacelmError(f"invalid config: {entry!r} is made by both {made_by[entry]} and {key}", source)
                made_by[entry] = key
    if config["challenge"]:
        _check_challenge_compliant(config, source)
    return config


def _check_challenge_compliant(config: dict, source: str | os.PathLike) -> None:
    """``challenge: true``: the synthetic training set alone, no outside teacher or labels."""
    outside = [entry for entry in config["train_sets"] if entry != config["splits"]["train"]]
    if outside:
        raise FacelmError(f"invalid config: challenge: true allows only the training set {config['splits']['train']!r}, "
                          f"not {outside[0]!r} in train_sets", source)
    teacher = config["distill"]["teacher"]
    if config["distill"]["enabled"] and (teacher == "teacher" or is_teacher_spec(teacher)):
        raise FacelmError(f"invalid config: challenge: true refuses the outside teacher {teacher!r}", source)


#: Largest config file read (a config is a few KB; this bounds the parse and the validation).
MAX_CONFIG_BYTES = 1 << 20
#: Deepest nesting of lists and mappings a config may have.
MAX_CONFIG_DEPTH = 32


class _ConfigLoader(yaml.SafeLoader):
    """YAML as configs use it: no aliases (``*name`` would let a few lines expand into billions of
    nodes), no explicit tags (``!!binary``, ``!!python/...``), nesting at most :data:`MAX_CONFIG_DEPTH`."""

    depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, f"alias *{event.anchor} (aliases are not accepted)",
                                              event.start_mark)
        if getattr(event, "tag", None) not in (None, "!"):
            raise yaml.composer.ComposerError(None, None, f"tag {event.tag} (tags are not accepted)", event.start_mark)
        if self.depth >= MAX_CONFIG_DEPTH:
            raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_CONFIG_DEPTH} levels",
                                              event.start_mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def load_yaml(text: str) -> Any:
    """Parse config YAML with :class:`_ConfigLoader`."""
    return yaml.load(text, Loader=_ConfigLoader)  # noqa: S506 -- a SafeLoader subclass


def _yaml_problem(err: yaml.YAMLError) -> str:
    """``line N: what`` of a YAML error, without PyYAML's multi-line context."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or type(err).__name__
    return f"line {mark.line + 1}: {problem}" if mark else problem


def _config_text(path: Path) -> str:
    """A config file's text: at most :data:`MAX_CONFIG_BYTES`, UTF-8 (a one-line error otherwise)."""
    with open(path, "rb") as handle:
        data = handle.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise FacelmError(f"config file is over {MAX_CONFIG_BYTES // 2**20} MiB", path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise FacelmError(f"not UTF-8 text (byte 0x{data[err.start]:02x} on line {line}); save the config as UTF-8",
                          path) from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.c=VALUE`` -> (["a", "b", "c"], VALUE parsed as YAML, as a config file is)."""
    if "=" not in text:
        raise FacelmError(f"override {text!r} is not KEY=VALUE")
    key, raw = text.split("=", 1)
    try:
        value = load_yaml(raw)
    except yaml.YAMLError as err:
        raise FacelmError(f"override {text!r}: not a valid YAML value ({_yaml_problem(err)})") from None
    keys = key.strip().split(".")
    if len(keys) > MAX_CONFIG_DEPTH:
        raise FacelmError(f"override {text!r}: key nested deeper than {MAX_CONFIG_DEPTH} levels")
    return keys, value


def apply_overrides(config: dict, overrides: list) -> dict:
    """Set overrides on a copy of ``config``, in order: ``KEY=VALUE`` texts (dotted keys) or
    ``(dotted key, value)`` pairs already typed (a command line's flags)."""
    config = copy.deepcopy(config)
    for item in overrides:
        keys, value = parse_override(item) if isinstance(item, str) else (item[0].split("."), item[1])
        text = item if isinstance(item, str) else f"{item[0]}={item[1]}"
        node = config
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise FacelmError(f"override {text!r}: {key} is not a section")
        node[keys[-1]] = value
    return config


def load_config(path: str | os.PathLike, overrides: list | None = None) -> "Config":
    """Read, override, validate and default-fill a config file -> a typed :class:`Config`."""
    path = Path(path)
    try:
        config = load_yaml(_config_text(path))
    except FileNotFoundError:
        raise FacelmError("config file not found", path) from None
    except yaml.YAMLError as err:
        raise FacelmError(f"not valid YAML ({_yaml_problem(err)})", path) from None
    if not isinstance(config, dict):
        raise FacelmError("config must be a mapping of settings", path)
    return parse_config(apply_overrides(config, overrides or []), path)


# ----------------------------------------------------------------------------- typed config
class FrozenDict(dict):
    """A read-only dict (model kwargs, per-model train overrides, search spaces); picklable."""

    def _refuse(self, *args, **kwargs):
        raise TypeError("config values are read-only; use Config.updated(...)")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self):
        return FrozenDict, (dict(self),)


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return FrozenDict({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _thaw(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


class _Section:
    """Shared by every typed section: built from a validated dict, dumped back to one."""

    @classmethod
    def from_dict(cls, data: dict):
        hints = typing.get_type_hints(cls)
        values = {}
        for f in dataclasses.fields(cls):
            kind, raw = hints[f.name], data[f.name]
            if isinstance(kind, type) and issubclass(kind, _Section):
                values[f.name] = kind.from_dict(raw)
            elif typing.get_origin(kind) is tuple and typing.get_args(kind)[0] is ModelSpec:
                values[f.name] = tuple(ModelSpec.from_dict(item) for item in raw)
            else:
                values[f.name] = _freeze(raw)
        return cls(**values)

    def to_dict(self) -> dict:
        """Plain dicts and lists (for YAML/JSON records and for re-validation)."""
        return _thaw(self)


@dataclass(frozen=True)
class ModelSpec(_Section):
    name: str
    kwargs: FrozenDict = field(default_factory=FrozenDict)
    train: FrozenDict = field(default_factory=FrozenDict)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelSpec":
        return cls(data["name"], _freeze(data.get("kwargs") or {}), _freeze(data.get("train") or {}))

    @property
    def id(self) -> str:
        """Its name, plus ``-<head>`` when a head is chosen (run folders are named by it)."""
        head = self.kwargs.get("head")
        return f"{self.name}-{head}" if head else self.name


@dataclass(frozen=True)
class Splits(_Section):
    train: str
    val: str
    test: str


@dataclass(frozen=True)
class Check(_Section):
    drop_bad: bool


@dataclass(frozen=True)
class Preprocess(_Section):
    gamma: float
    gamma_mode: str


@dataclass(frozen=True)
class Augment(_Section):
    backend: str
    hflip_p: float
    rotate_deg: float
    scale: float
    shift: float
    affine_p: float
    perspective_scale: float
    perspective_p: float
    brightness: float
    contrast: float
    saturation: float
    hue: float
    color_p: float
    blur_limit: int
    blur_p: float
    grayscale_p: float
    jpeg_quality_min: int
    jpeg_p: float
    occlusion_p: float
    occlusion_max_frac: float


@dataclass(frozen=True)
class Train(_Section):
    size: int
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup_epochs: float
    ema_decay: float
    grad_clip: float
    loss: str
    jaw_convention: str
    pose_balance: float
    amp: bool
    workers: int
    val_every: int
    steps: int

    def for_batches(self, batches_per_epoch: int) -> "Train":
        """With ``steps`` set, the epochs that hold that many optimiser steps (the last one whole):
        a schedule in steps means the same training whether the sets hold 1,000 faces or 12,000."""
        if not self.steps:
            return self
        return dataclasses.replace(self, epochs=max(1, math.ceil(self.steps / max(1, batches_per_epoch))))


@dataclass(frozen=True)
class Folds(_Section):
    k: int
    train_folds: tuple[int, ...]


@dataclass(frozen=True)
class Tune(_Section):
    enabled: bool
    model: ModelSpec
    n_trials: int
    workers: int
    epochs: int
    fold: int
    search_space: FrozenDict
    storage: str


@dataclass(frozen=True)
class Ensemble(_Section):
    single_model: bool
    hflip_tta: bool
    max_steps: int


@dataclass(frozen=True)
class Teacher(_Section):
    kind: str
    path: str
    passes: int
    pixel_centres: bool
    jitter: int

    @property
    def spec(self) -> str:
        """The teacher spec string :func:`facelm.models.teachers.load_teacher` reads."""
        return (f"{self.kind}:{self.path},passes={self.passes},pixel_centres={int(self.pixel_centres)}"
                f",jitter={self.jitter}")


@dataclass(frozen=True)
class Distill(_Section):
    enabled: bool
    teacher: str
    teacher_budget_mb: float
    hflip_tta: bool
    weight: float
    student: ModelSpec


@dataclass(frozen=True)
class Ablation(_Section):
    methods: tuple[str, ...]
    epochs: int
    size: int
    train_set: str


@dataclass(frozen=True)
class Compute(_Section):
    gpus: int
    threads: int
    ddp_procs: int
    train_mem_mb: int
    train_runtime_min: int


@dataclass(frozen=True)
class Config(_Section):
    """The whole validated configuration (see the schema for what each key means)."""

    data_dir: str
    make_demo_data: bool
    splits: Splits
    train_sets: tuple[str, ...]
    train_set_options: FrozenDict
    prepare: FrozenDict
    challenge: bool
    teacher: Teacher
    relabel: FrozenDict
    photo_sets: FrozenDict
    pose_synthesis: FrozenDict
    results_dir: str
    submissions_dir: str
    run_name: str
    budget_mb: float
    seed: int
    check: Check
    preprocess: Preprocess
    augment: Augment
    train: Train
    folds: Folds
    models: tuple[ModelSpec, ...]
    tune: Tune
    ensemble: Ensemble
    distill: Distill
    ablation: Ablation
    compute: Compute

    def updated(self, **sections: Any) -> "Config":
        """A validated copy with settings changed: ``cfg.updated(train={"lr": 0.01}, seed=1)``
        (a dict merges into its section; anything else replaces the value)."""
        data = self.to_dict()
        for key, value in sections.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **copy.deepcopy(value)}
            else:
                data[key] = _thaw(value)
        return parse_config(data, "updated config")

    def train_for(self, spec: ModelSpec) -> Train:
        """The train section with a model's own overrides applied (validated like the section)."""
        return self.updated(train=dict(spec.train)).train if spec.train else self.train


def parse_config(config: dict, source: str | os.PathLike = "config") -> Config:
    """Validate a config dict (defaults filled) and type it."""
    return Config.from_dict(validate_config(copy.deepcopy(config), source))


def augment_settings(overrides: "Augment | dict | None" = None) -> Augment:
    """An ``augment:`` section from partial settings: schema defaults, validated like config.yaml."""
    if isinstance(overrides, Augment):
        return overrides
    minimal = {"data_dir": ".", "train_sets": ["-"], "models": [{"name": "-"}], "augment": dict(overrides or {})}
    return parse_config(minimal, "augment settings").augment


def _check_against_schema() -> None:
    """Every typed section has exactly the schema's keys (runs at import)."""
    root = schema()

    def check(cls: type, node: dict, where: str) -> None:
        if "$ref" in node:
            node = root["definitions"][node["$ref"].rsplit("/", 1)[-1]]
        fields = {f.name for f in dataclasses.fields(cls)}
        declared = set(node.get("properties", {}))
        if fields != declared:
            raise ImportError(f"facelm.config: {where} fields {sorted(fields ^ declared)} differ from {SCHEMA_PATH.name}")
        hints = typing.get_type_hints(cls)
        for name in fields:
            kind = hints[name]
            if isinstance(kind, type) and issubclass(kind, _Section):
                check(kind, node["properties"][name], f"{where}.{name}")

    check(Config, root, "config")
    check(ModelSpec, root["definitions"]["model_spec"], "model spec")


_check_against_schema()


def add_arguments(parser) -> None:
    parser.add_argument("config", help="config.yaml to validate")
    parser.add_argument("overrides", nargs="*", help="KEY=VALUE overrides (dotted keys)")


def main(args) -> int:
    load_config(args.config, args.overrides)
    print(f"{args.config}: valid")
    return 0
