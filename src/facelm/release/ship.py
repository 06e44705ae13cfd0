"""``facelm ship``: a trained model -> a shipped pretrained model in the package's weights folder.

    facelm ship results/.../model.pt --name fast --val ../shared/data/aflw_val \\
        --terms "300-W: non-commercial research only" --out src/facelm/weights/
    -> src/facelm/weights/fast.onnx  (self-contained: the card is in its ONNX metadata)
       src/facelm/weights/fast.md    (the human-readable model card)

MODEL is a ``model.pt``, an ensemble ``.json``, an exported ``.onnx`` or a teacher spec
(``3ddfa_v2:DIR``). The model is exported
(if it is not ONNX yet), and the ONNX file itself -- what users will run -- is scored on the
labelled ``--val`` folder and timed (:func:`facelm.challenge.model_card.build_card`), so the
card's NME is the shipped file's, which tests/inference/test_shipped.py re-measures. The card
(name, input size, normalisation, gamma, crop framing, NME, MB, ms, terms) goes into the ONNX
metadata; the Markdown card beside it adds the per-region table and what the model was trained on.
"""

from __future__ import annotations

import argparse
import re
import shutil
import tempfile
from pathlib import Path

from facelm.atomic import atomic_open, atomic_path
from facelm.challenge.model_card import build_card, card_markdown, merged_provenance, training_record
from facelm.data.limits import positive_int
from facelm.errors import FacelmError

#: the scores kept in the ONNX metadata (the Markdown card has the full table)
CARD_SCORES = ("n_images", "nme_384", "nme_box", "nme_io", "fr_box_10", "auc_box_10")


def _source_label(model: Path) -> str:
    """The model's path relative to the working folder (no build machine's absolute path in a shipped
    file), or a teacher spec as given."""
    if not model.exists():
        return str(model)
    try:
        return str(model.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return model.name


def ship_model(model: str | Path, name: str, val: str | Path, terms: str | None, out: str | Path,
               runs: int = 200, hflip_tta: bool = False) -> dict:
    """Write ``out/NAME.onnx`` (card in its metadata) and ``out/NAME.md``; returns the metadata card.

    ``terms`` None: the terms of every source the checkpoint's recorded config names
    (:mod:`facelm.challenge.provenance`), joined. ``hflip_tta``: the shipped model averages each
    face with its mirror image by default (its card records it; twice the time per face)."""
    from facelm.inference.onnx_predictor import CARD_FORMAT, read_onnx_card
    from facelm.inference.pytorch.export import export_onnx, write_onnx_card

    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
        raise FacelmError(f"a shipped model's name is lower-case letters, digits, - and _ (got {name!r})")
    model, out = Path(model), Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / f"{name}.onnx"
        if model.suffix.lower() == ".onnx":
            read_onnx_card(model)  # a facelm export (its card, in metadata or sidecar, is carried over)
            shutil.copyfile(model, staged)
            if model.with_suffix(".json").is_file():
                shutil.copyfile(model.with_suffix(".json"), staged.with_suffix(".json"))
        else:
            export_onnx(model, staged)
        record = training_record(model)
        origin = merged_provenance(record.get("members", []))
        if terms is None:
            if origin is None:
                raise FacelmError("no recorded training config to take the terms from: pass --terms", model)
            terms = "; ".join(dict.fromkeys(source["terms"] for source in origin["sources"]))
        measured = build_card(staged, val, runs, True if hflip_tta else None)
        card = {**read_onnx_card(staged), "format": CARD_FORMAT, "name": name, "onnx": staged.name,
                "val_folder": Path(val).resolve().name, "val_nme_384": measured["scores"]["nme_384"],
                "val_scores": {key: measured["scores"][key] for key in CARD_SCORES},
                "hflip_tta": measured["hflip_tta"], "ort_ms_per_face_1_thread": measured["ort_ms_per_face_1_thread"],
                "terms": terms, "source": _source_label(model),
                "challenge_compliant": bool(origin and origin["challenge_compliant"])}
        write_onnx_card(staged, card)
        card["size_mb"] = staged.stat().st_size / 2**20
        write_onnx_card(staged, card)
        measured.update(model=staged.name, onnx_mb=card["size_mb"], training=record)
        with atomic_path(out / staged.name) as target:
            shutil.copyfile(staged, target)
    with atomic_open(out / f"{name}.md", "w") as handle:
        handle.write("\n".join(card_lines(card, measured)) + "\n")
    return card


def card_lines(card: dict, measured: dict) -> list[str]:
    """The Markdown model card of a shipped model: what it is, its terms, then the measured card."""
    framing = card["crop_framing"]
    return [f"# Shipped model `{card['name']}`", "",
            f"- File: `{card['name']}.onnx` ({card['size_mb']:.2f} MB), input {card['input_size']} px RGB, "
            f"{card['normalisation']}, gamma {card.get('gamma', 1.0)} ({card.get('gamma_mode', 'fixed')}).",
            f"- Crop framing: the box around the 68 points spans {framing['landmark_box_fraction']} of the crop side, "
            f"centred at {framing['landmark_box_centre']} of it (`facelm.Landmarker` frames detected faces so).",
            f"- Terms: {card['terms']}", "",
            *card_markdown(measured)[2:]]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model.pt, an ensemble .json, an exported .onnx, or a teacher spec KIND:PATH")
    parser.add_argument("--name", required=True, help="the shipped name (e.g. fast, budget): NAME.onnx and NAME.md")
    parser.add_argument("--val", required=True, help="labelled folder the card's NME is measured on (aflw_val)")
    parser.add_argument("--terms", default=None,
                        help="the licences of the data and teachers the model learned from (shown by `facelm models --pretrained`; "
                             "default: the terms of every source its recorded training config names)")
    parser.add_argument("--out", default="src/facelm/weights", help="the package's weights folder (default: src/facelm/weights)")
    parser.add_argument("--runs", type=positive_int, default=200, help="timed onnxruntime calls (median)")
    parser.add_argument("--hflip-tta", action="store_true",
                        help="the shipped model averages with the mirrored face by default (2x the time)")


def main(args: argparse.Namespace) -> int:
    card = ship_model(args.model, args.name, args.val, args.terms, args.out, args.runs, args.hflip_tta)
    print(f"shipped {Path(args.out) / card['onnx']}: NME {card['val_nme_384']:.3f} on {card['val_folder']}, "
          f"{card['size_mb']:.2f} MB, {card['ort_ms_per_face_1_thread']:.2f} ms/face; card {Path(args.out) / card['name']}.md")
    return 0
