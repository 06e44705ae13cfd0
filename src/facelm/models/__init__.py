"""Landmark models, created by name: ``create_model("pfld_025")``.

Importing this package registers every family (each module's ``@register_model``
variants). See :mod:`facelm.models.base` for the input/output contract.
"""

from facelm.models import asmnet, bfm_net, convnext_dml, hourglass, pfld, slpt, synergy, tddfa_student, timm_models  # noqa: F401  (registration)
from facelm.models._registry import (
    create_model,
    family_of,
    is_model,
    list_families,
    list_models,
    register_family_default,
    register_model,
    resolve_name,
)
from facelm.models.base import LandmarkModel, count_params, model_size_mb

__all__ = [
    "LandmarkModel",
    "count_params",
    "create_model",
    "family_of",
    "is_model",
    "list_families",
    "list_models",
    "model_size_mb",
    "register_family_default",
    "register_model",
    "resolve_name",
]
