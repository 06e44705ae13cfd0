"""The pretrained models shipped inside the package (``facelm/weights/``): the default of
``facelm predict`` and :class:`facelm.Landmarker`, listed by ``facelm models --pretrained``.

Each shipped model is ``NAME.onnx`` (self-contained: its card is in the ONNX metadata,
:func:`facelm.inference.onnx_predictor.read_onnx_card`) with its human-readable card ``NAME.md``;
``facelm ship`` (:mod:`facelm.release.ship`) writes both. Reading them needs onnxruntime only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from facelm.errors import FacelmError
from facelm.inference.onnx_predictor import read_onnx_card

#: the folder of shipped models (package data)
WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
#: the default is the first of these that is shipped (else the first by name)
DEFAULT_ORDER = ("fast", "budget")


@dataclass(frozen=True)
class ShippedModel:
    name: str
    onnx: Path
    card_md: Path
    card: dict  # the ONNX metadata card


def shipped_models(folder: Path | None = None) -> list[ShippedModel]:
    """Every ``NAME.onnx`` of ``folder`` (default :data:`WEIGHTS_DIR`) with its ``NAME.md``, default first;
    an ONNX without its card is an error."""
    folder = WEIGHTS_DIR if folder is None else folder
    models = []
    for onnx in sorted(folder.glob("*.onnx")):
        card_md = onnx.with_suffix(".md")
        if not card_md.is_file():
            raise FacelmError(f"shipped model has no model card {card_md.name}", onnx)
        models.append(ShippedModel(onnx.stem, onnx, card_md, read_onnx_card(onnx)))
    rank = {name: i for i, name in enumerate(DEFAULT_ORDER)}
    return sorted(models, key=lambda m: (rank.get(m.name, len(rank)), m.name))


def shipped_model_path(name: str | None = None, folder: Path | None = None) -> Path:
    """The ONNX file of the shipped model ``name`` (None: the default one) in ``folder`` (default :data:`WEIGHTS_DIR`)."""
    folder = WEIGHTS_DIR if folder is None else folder
    if name is None:
        onnx = [p for p in (folder / f"{n}.onnx" for n in DEFAULT_ORDER) if p.is_file()] or sorted(folder.glob("*.onnx"))
        if not onnx:
            raise FacelmError(f"this facelm install ships no pretrained model (none in {folder}); "
                              "give a model file (--model / Landmarker(model=...))")
        return onnx[0]
    path = folder / f"{name}.onnx"
    if not path.is_file():
        names = ", ".join(p.stem for p in sorted(folder.glob("*.onnx"))) or "none"
        raise FacelmError(f"no shipped model {name!r} (shipped: {names})")
    return path


def resolve_model(model: str | Path | None) -> Path:
    """A model argument -> its file: None is the default shipped model, a bare shipped name (``fast``)
    that is not a file is that shipped model, anything else is a path."""
    if model is None:
        return shipped_model_path()
    path = Path(model)
    if not path.exists() and path.suffix == "" and len(path.parts) == 1:
        return shipped_model_path(str(model))
    return path
