"""A small model registry in the style of timm's ``register_model`` / ``create_model``.

A family module defines a builder and registers one-line public variants::

    @register_model
    def pfld_025(**kwargs):
        return PFLD(width=0.25, **kwargs)

``create_model(name, **kwargs)`` builds any registered variant; ``list_models()`` lists
them all, so tests parametrised over ``list_models()`` cover a model the moment it is
registered. A variant's family is the module that registers it (:func:`family_of`: ``pfld``,
``timm_models``...); ``register_family_default`` maps a family name (``pfld``) to its default variant.
"""

from __future__ import annotations

import fnmatch
from typing import Callable

import torch.nn as nn

from facelm.errors import FacelmError

_MODEL_ENTRYPOINTS: dict[str, Callable[..., nn.Module]] = {}
_FAMILY_DEFAULTS: dict[str, str] = {}
_FAMILY_OF: dict[str, str] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: register ``fn`` under its function name."""
    name = fn.__name__
    if name in _MODEL_ENTRYPOINTS:
        raise ValueError(f"model {name!r} registered twice")
    _MODEL_ENTRYPOINTS[name] = fn
    _FAMILY_OF[name] = fn.__module__.rsplit(".", 1)[-1]
    return fn


def register_family_default(family: str, variant: str) -> None:
    """``create_model(family)`` builds ``variant`` (e.g. ``pfld`` -> ``pfld_100``)."""
    _FAMILY_DEFAULTS[family] = variant


def resolve_name(name: str) -> str:
    """The registered variant a name refers to (a variant name or a family name)."""
    if name in _MODEL_ENTRYPOINTS:
        return name
    if name in _FAMILY_DEFAULTS:
        return _FAMILY_DEFAULTS[name]
    known = ", ".join(sorted(_MODEL_ENTRYPOINTS))
    raise FacelmError(f"unknown model {name!r}; registered models: {known}")


def family_of(name: str) -> str:
    """The family (registering module's name, e.g. ``timm_models``) of a variant or family name."""
    return _FAMILY_OF[resolve_name(name)]


def is_model(name: str) -> bool:
    return name in _MODEL_ENTRYPOINTS or name in _FAMILY_DEFAULTS


def list_models(pattern: str = "*") -> list[str]:
    """Sorted registered variant names matching a shell-style ``pattern``."""
    return sorted(n for n in _MODEL_ENTRYPOINTS if fnmatch.fnmatch(n, pattern))


def list_families() -> dict[str, str]:
    """Family name -> default variant."""
    return dict(sorted(_FAMILY_DEFAULTS.items()))


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model (random weights unless a model takes a `pretrained` file: the challenge trains from scratch).

    The built model remembers how it was made in ``model.spec`` (resolved name and
    kwargs, less the ``INIT_ONLY`` ones such as a ``pretrained`` weights path), which
    checkpoints save so the model can be rebuilt exactly.
    """
    variant = resolve_name(name)
    try:
        model = _MODEL_ENTRYPOINTS[variant](**kwargs)
    except (TypeError, ValueError) as err:  # an unknown keyword, or a value the builder refuses
        raise FacelmError(f"model {variant!r}: bad arguments {kwargs} ({err})") from None
    init_only = getattr(model, "INIT_ONLY", ())
    model.spec = {"name": variant, "kwargs": {k: v for k, v in kwargs.items() if k not in init_only}}
    return model
