"""Outside teachers: landmark models that facelm does not train, named by kind and path.

A teacher spec is ``KIND:PATH[,option=value...]``, e.g. ``3ddfa_v2:../shared/models/3ddfa_v2`` or
``3ddfa_v2:../shared/models/3ddfa_v2,passes=2,pixel_centres=1``. A loaded teacher is an
``nn.Module`` under the facelm model contract (challenge crop pixels in, normalised points out) with
a meta dict like a ``model.pt``'s, so :func:`facelm.models.checkpoint.load_model` returns it for a
spec and everything that takes a model file (evaluate, export, predict, distil, relabel) takes a
teacher too. Its terms travel in ``meta["terms"]`` to the model cards of what learns from it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from facelm.config import TEACHER_KINDS, is_teacher_spec
from facelm.errors import FacelmError

if TYPE_CHECKING:
    import torch

#: kind -> its options (name -> converter from the spec text) and terms of use
KINDS = {
    "3ddfa_v2": {
        "options": {"passes": int, "pixel_centres": lambda v: v.lower() in ("1", "true", "yes"), "jitter": int},
        "terms": "3DDFA_V2 code and weights MIT; trained on 300W-LP (from 300-W) and decoded through the BFM: "
                 "non-commercial research use",
    },
}


def parse_teacher_spec(text: str) -> tuple[str, str, dict]:
    """``KIND:PATH[,k=v...]`` -> (kind, path, options); a malformed spec is a one-line error."""
    kind, sep, rest = str(text).partition(":")
    if not sep or kind not in KINDS:
        raise FacelmError(f"not a teacher spec {text!r} (KIND:PATH; kinds: {', '.join(KINDS)})")
    path, *pairs = rest.split(",")
    options = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        convert = KINDS[kind]["options"].get(key)
        if not eq or convert is None:
            raise FacelmError(f"teacher spec {text!r}: unknown option {pair!r} (options: {', '.join(KINDS[kind]['options'])})")
        try:
            options[key] = convert(value)
        except ValueError:
            raise FacelmError(f"teacher spec {text!r}: bad value for {key}") from None
    return kind, path, options


def load_teacher(text: str) -> "tuple[torch.nn.Module, dict]":
    """(model in eval mode, meta) of a teacher spec; meta names the spec and its terms."""
    kind, path, options = parse_teacher_spec(text)
    from facelm.models.tddfa import load_tddfa

    model, meta = load_tddfa(path, **options)
    meta.update({"teacher": text, "teacher_kind": kind, "terms": KINDS[kind]["terms"]})
    return model.eval(), meta


if set(KINDS) != set(TEACHER_KINDS):  # pragma: no cover -- a developer error, caught on import
    raise ImportError("facelm.config.TEACHER_KINDS must list the kinds defined in facelm.models.teachers")
