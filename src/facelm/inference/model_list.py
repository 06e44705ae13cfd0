"""``facelm models``: the registered architectures (``facelm models``, needs torch) or the shipped
pretrained models (``facelm models --pretrained``, onnxruntime only) with NME, size, speed and terms."""

from __future__ import annotations

import argparse

from facelm.data.limits import positive_int


def pretrained_rows() -> list[dict]:
    """One row per shipped model (:mod:`facelm.inference.shipped`), the default first."""
    from facelm.inference.shipped import shipped_models

    rows = []
    for i, model in enumerate(shipped_models()):
        card = model.card
        # the card times one pass; a model shipped with flip TTA runs two per face (the image and its mirror)
        passes = 2 if card.get("hflip_tta") else 1
        per_pass = card.get("ort_ms_per_face_1_thread")
        rows.append({"name": model.name, "default": i == 0, "nme": card.get("val_nme_384"),
                     "val_folder": card.get("val_folder", "aflw_val"), "mb": card.get("size_mb"),
                     "ms": None if per_pass is None else per_pass * passes, "passes": passes,
                     "input_size": card.get("input_size"),
                     "terms": card.get("terms", "not stated"), "file": str(model.onnx)})
    return rows


def _number(value, fmt: str) -> str:
    return "?" if value is None else format(value, fmt)


def print_pretrained(markdown: bool) -> None:
    rows = pretrained_rows()
    if not rows:
        from facelm.inference.shipped import WEIGHTS_DIR

        print(f"no pretrained model is shipped with this install ({WEIGHTS_DIR} holds none)")
        return
    if markdown:
        print("| model | NME x100 (aflw_val, /384) | MB | ms/face (ORT, 1 thread, all passes) | passes | input px | terms |")
        print("|---|---|---|---|---|---|---|")
    else:
        print(f"{'model':<16}{'NME':>8}{'MB':>8}{'ms':>8}{'passes':>7}{'px':>6}  terms")
    for r in rows:
        name = r["name"] + (" (default)" if r["default"] else "")
        if markdown:
            print(f"| {name} | {_number(r['nme'], '.3f')} | {_number(r['mb'], '.2f')} | {_number(r['ms'], '.2f')} "
                  f"| {r['passes']} | {r['input_size']} | {r['terms']} |")
        else:
            print(f"{name:<16}{_number(r['nme'], '.3f'):>8}{_number(r['mb'], '.2f'):>8}{_number(r['ms'], '.2f'):>8}"
                  f"{r['passes']:>7}{r['input_size']:>6}  {r['terms']}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pretrained", action="store_true",
                        help="list the shipped pretrained models (NME on aflw_val, MB, ms, terms) instead of the architectures")
    parser.add_argument("--size", type=positive_int, default=128, help="input size for the speed measurement (architectures)")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    parser.add_argument("--repeats", type=positive_int, default=10, help="timed forward passes per architecture (median)")


def main(args: argparse.Namespace) -> int:
    if args.pretrained:
        print_pretrained(args.markdown)
        return 0
    from facelm.models.listing import print_model_table

    print_model_table(args.size, args.repeats, args.markdown)
    return 0
