"""Knowledge distillation: a teacher labels every augmented training image; one student learns.

The teacher is a ``model.pt`` or an ensemble ``.json`` (any size: only the student is
submitted), run frozen on each augmented batch, optionally with horizontal-flip TTA. The
student is an ordinary training run (:func:`facelm.training.trainer.train_model`) whose loss
is ``(1 - w) * loss(ground truth) + w * loss(teacher)`` with ``w = distill.weight``, each
term the student's own loss (point loss plus its head's terms), so every model family
distils the same way. Teacher and student see the same pixels: the batch is resized to
each member's input size (bilinear; area-averaged when shrinking), so a teacher trained
at a larger size sees an upsampled image -- train the teacher at the student's size or larger
students lose nothing, but a higher-resolution teacher gains less than it could.

    facelm distill --config C [--teacher ensemble.json] [--out DIR]
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from facelm import layout
from facelm.config import Config
from facelm.data.limits import positive_int
from facelm.errors import FacelmError
from facelm.landmarks68 import FLIP_PERM
from facelm.models.checkpoint import load_model, read_ensemble_spec
from facelm.models.teachers import is_teacher_spec
from facelm.training.trainer import train_model
from facelm.verbs import add_config_arguments, verb_config


class Teacher:
    """Frozen member models whose weighted mean (normalised coordinates) labels a batch.

    ``teacher(images)``: float ``(B, 3, S, S)`` pixels 0..255 (the student's batch) ->
    ``(B, 68, 2)`` normalised points. ``key`` identifies the teacher (weights and settings)
    so a resumed student never continues under another teacher.
    """

    def __init__(self, members: list[tuple[torch.nn.Module, int, float]], hflip_tta: bool, key: str):
        if not members:
            raise FacelmError("a teacher needs at least one model")
        total = sum(w for _, _, w in members)
        self.members = [(model.eval(), size, w / total) for model, size, w in members]
        self.hflip_tta = hflip_tta
        self.key = key
        self.record: dict = {}  # what metrics.json says about the teacher

    @classmethod
    def from_file(cls, path: str | os.PathLike, hflip_tta: bool, gamma: float, gamma_mode: str) -> "Teacher":
        """A ``model.pt``, an ensemble ``.json`` or an outside teacher spec (``KIND:PATH``, which
        reads the whole crop, upsampled from the student's batch); refuses members preprocessed
        unlike the student."""
        outside = is_teacher_spec(str(path))
        path = Path(path) if not outside else str(path)
        if not outside and path.suffix.lower() == ".json":
            _, entries = read_ensemble_spec(path)
        else:
            entries = [(path, 1.0)]
        digest = hashlib.sha256(f"tta={hflip_tta}".encode())
        members, size_mb = [], 0.0
        for member_path, weight in entries:
            model, meta = load_model(member_path)
            if (float(meta.get("gamma", 1.0)), meta.get("gamma_mode", "fixed")) != (float(gamma), gamma_mode):
                raise FacelmError(f"teacher member was trained with gamma {meta.get('gamma')} ({meta.get('gamma_mode')}), "
                                  f"the student with {gamma} ({gamma_mode})", member_path)
            members.append((model, int(meta["input_size"]), weight))
            size_mb += float(meta.get("size_mb", 0.0))
            digest.update(meta["weights_sha256"].encode() if outside else Path(member_path).read_bytes())
            digest.update(f"{weight}".encode())
        teacher = cls(members, hflip_tta, digest.hexdigest()[:16])
        teacher.record = {"teacher": str(path), "teacher_mb": size_mb, "teacher_hflip_tta": hflip_tta}
        if outside:
            teacher.record["teacher_terms"] = meta["terms"]
        return teacher

    def to(self, device) -> "Teacher":
        self.members = [(model.to(device), size, w) for model, size, w in self.members]
        return self

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        out = 0
        for model, size, weight in self.members:
            x = images
            if x.shape[-1] != size:
                x = F.interpolate(x, size=(size, size), mode="area" if size < x.shape[-1] else "bilinear")
            points = model(x)["landmarks"].float()
            if self.hflip_tta:
                mirrored = model(x.flip(-1))["landmarks"].float()[:, FLIP_PERM]
                mirrored = torch.stack([1 - mirrored[..., 0], mirrored[..., 1]], dim=-1)
                points = (points + mirrored) / 2
            out = out + weight * points
        return out


def distill(config: Config, teacher_path: str | os.PathLike, out_dir: str | os.PathLike, fold: int | None = None,
            on_epoch=None) -> dict:
    """Train ``config.distill.student`` under the teacher at ``teacher_path``; returns metrics.json's dict."""
    settings = config.distill
    teacher = Teacher.from_file(teacher_path, settings.hflip_tta, config.preprocess.gamma, config.preprocess.gamma_mode)
    return train_model(config, settings.student, fold, out_dir, on_epoch, teacher=teacher)


def default_teacher(config: Config) -> str:
    """``distill.teacher`` (``teacher``: the config's outside teacher), or the teacher ensemble the DAG
    builds from the run's fold models."""
    if config.distill.teacher == "teacher":
        return config.teacher.spec
    return config.distill.teacher or str(layout.teacher_spec(config))


def add_arguments(parser) -> None:
    add_config_arguments(parser, "distill")
    parser.add_argument("--teacher", help="model.pt, ensemble .json or teacher spec KIND:PATH (default: distill.teacher or the run's teacher ensemble)")
    parser.add_argument("--fold", type=int, help="hold out this fold (default: the student trains on all rows)")
    parser.add_argument("--out", help="run folder (default <results_dir>/distill/<student id>)")
    parser.add_argument("--threads", type=positive_int, help="torch intra-op threads (default: torch's)")


def main(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    config = verb_config("distill", args)
    teacher = args.teacher or default_teacher(config)
    out = Path(args.out) if args.out else layout.distill_dir(config, args.fold)
    started = time.perf_counter()
    metrics = distill(config, teacher, out, args.fold)
    if metrics:
        print(f"{out}: student val NME {metrics['val_nme_384']:.3f} (x100, /384), {metrics['size_mb']:.2f} MB, "
              f"teacher {teacher} ({metrics['teacher_mb']:.2f} MB, weight {metrics['distill_weight']}), {time.perf_counter() - started:.0f} s")
    return 0
