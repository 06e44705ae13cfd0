"""Model files: weights + how to rebuild the model + the config that made it.

A ``model.pt`` is ``{"format": "facelm-model-1", "spec": {"name", "kwargs"}, "state_dict",
"meta"}``, loaded with ``torch.load(weights_only=True)`` (no code runs from the file).
``meta`` holds ``input_size``, ``gamma``, ``gamma_mode``, ``size_mb``, ``params``,
``config`` and, when known, ``val_nme_384``.
"""

from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path

import torch

from facelm.atomic import atomic_path
from facelm.errors import FacelmError
from facelm.json_input import read_json

FORMAT = "facelm-model-1"
#: Largest model file read, by its (zip) members' uncompressed size: torch allocates what they declare.
MAX_MODEL_BYTES = 4 * 2**30


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, meta: dict) -> None:
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "spec": model.spec, "state_dict": state, "meta": meta}, tmp)


def _check_unpacked_size(path: Path) -> None:
    """Refuse a model file whose zip members would unpack to over :data:`MAX_MODEL_BYTES`."""
    try:
        with zipfile.ZipFile(path) as archive:
            nbytes = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # not a zip: torch.load refuses it in one line below
    if nbytes > MAX_MODEL_BYTES:
        raise FacelmError(f"model file unpacks to {nbytes / 2**30:.1f} GiB, over the limit "
                          f"({MAX_MODEL_BYTES // 2**30} GiB)", path)


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The raw checkpoint dict; any file that is not a facelm model -> one-line error."""
    path = Path(path)
    if not path.is_file():
        raise FacelmError("model file not found", path)
    _check_unpacked_size(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 -- any failure to parse an untrusted file means 'not a model'
        raise FacelmError(f"not a facelm model file ({type(err).__name__})", path) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise FacelmError(f"not a facelm model file (expected format {FORMAT})", path)
    return data


def load_model(path: str | os.PathLike) -> tuple[torch.nn.Module, dict]:
    """Rebuild the model by name, load its weights, return ``(model in eval mode, meta)``.

    A teacher spec (``3ddfa_v2:PATH``, :mod:`facelm.models.teachers`) loads that outside model."""
    from facelm.models import create_model
    from facelm.models.teachers import is_teacher_spec, load_teacher

    if is_teacher_spec(str(path)):
        return load_teacher(str(path))
    data = read_checkpoint(path)
    model = create_model(data["spec"]["name"], **data["spec"]["kwargs"])
    try:
        model.load_state_dict(data["state_dict"])
    except RuntimeError as err:
        raise FacelmError(f"weights do not fit model {data['spec']['name']} ({str(err).splitlines()[0]})", path) from None
    return model.eval(), data["meta"]


def resolve_member_path(spec_path: str | os.PathLike, member: str) -> Path:
    """A model path named in an ensemble spec: as written (absolute or from the working
    directory) when it exists there, else relative to the spec's folder."""
    member_path = Path(member)
    return member_path if member_path.is_absolute() or member_path.exists() else Path(spec_path).parent / member_path


def read_ensemble_spec(path: str | os.PathLike) -> tuple[dict, list[tuple[Path, float]]]:
    """An ensemble ``.json`` -> ``(spec, [(member model path, weight), ...])``, every entry checked.

    The file may be hand-edited: a member that is not ``{"model": str, "weight": positive number}``
    is a one-line error naming the spec and the member, never a KeyError; so are a member that is the
    spec itself and weights whose sum overflows.
    """
    path = Path(path)
    spec = read_json(path, "ensemble spec")
    members = spec.get("members") if isinstance(spec, dict) else None
    if not isinstance(members, list) or not members:
        raise FacelmError("not an ensemble spec (needs a non-empty list \"members\")", path)
    entries = []
    for i, member in enumerate(members):
        model = member.get("model") if isinstance(member, dict) else None
        weight = member.get("weight") if isinstance(member, dict) else None
        if not isinstance(model, str) or not model:
            raise FacelmError(f"member {i} has no \"model\" path", path)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not (math.isfinite(weight) and weight > 0):
            raise FacelmError(f"member {i} ({model}) has no positive \"weight\"", path)
        member_path = resolve_member_path(path, model)
        if member_path.resolve() == path.resolve():
            raise FacelmError(f"member {i} ({model}) is this ensemble spec itself", path)
        entries.append((member_path, float(weight)))
    if not math.isfinite(sum(weight for _, weight in entries)):
        raise FacelmError("the members' weights sum to infinity (they cannot be normalised)", path)
    return spec, entries
