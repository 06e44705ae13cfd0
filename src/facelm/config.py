"""Loading and validating ``config.yaml``.

The JSON schema in ``facelm/schemas/config.schema.yaml`` is the single description of
every setting; Snakemake validates the config against it (``snakemake.utils.validate``)
before any rule runs, and the ``facelm`` CLI does the same through :func:`load_config`.
Defaults declared in the schema are filled in, so code can index settings directly.
"""

from __future__ import annotations

import copy
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from facelm.errors import FacelmError

SCHEMA_PATH = Path(__file__).with_name("schemas") / "config.schema.yaml"


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
    where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
    if err.validator == "additionalProperties":
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        return f"unknown key {where + '.' if err.absolute_path else ''}{extra[0]}" if extra else err.message
    return f"key {where}: {err.message}"


def validate_config(config: dict, source: str | os.PathLike = "config") -> dict:
    """Validate ``config`` (a dict) in place, fill schema defaults, and return it."""
    root = schema()
    validator = jsonschema.Draft7Validator(root)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        raise FacelmError(f"invalid config: {_error_line(errors[0])}", source)
    return _fill_defaults(config, root, root)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.c=VALUE`` -> (["a", "b", "c"], VALUE parsed as YAML)."""
    if "=" not in text:
        raise FacelmError(f"override {text!r} is not KEY=VALUE")
    key, raw = text.split("=", 1)
    return key.strip().split("."), yaml.safe_load(raw)


def apply_overrides(config: dict, overrides: list[str]) -> dict:
    """Set dotted ``KEY=VALUE`` overrides on a copy of ``config``."""
    config = copy.deepcopy(config)
    for text in overrides:
        keys, value = parse_override(text)
        node = config
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise FacelmError(f"override {text!r}: {key} is not a section")
        node[keys[-1]] = value
    return config


def load_config(path: str | os.PathLike, overrides: list[str] | None = None) -> dict:
    """Read, override, validate and default-fill a config file."""
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise FacelmError("config file not found", path) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise FacelmError(f"not valid YAML{where}", path) from None
    if not isinstance(config, dict):
        raise FacelmError("config must be a mapping of settings", path)
    return validate_config(apply_overrides(config, overrides or []), path)


def add_arguments(parser) -> None:
    parser.add_argument("config", help="config.yaml to validate")
    parser.add_argument("overrides", nargs="*", help="KEY=VALUE overrides (dotted keys)")


def main(args) -> int:
    load_config(args.config, args.overrides)
    print(f"{args.config}: valid")
    return 0
