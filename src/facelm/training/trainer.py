"""Train one model (optionally one fold): plain PyTorch, resumable, deterministic.

:func:`train_model` reads build -> resume -> loop -> write: the run's training set
(:class:`facelm.data.training_set.TrainingSet`) and its loader (:mod:`facelm.training.loaders`),
the train state (:class:`facelm.training.train_state.TrainState`: AdamW, cosine schedule with
warm-up, EMA, AMP scaler) resumed from ``last.ckpt`` when its settings match, then
:func:`train_one_epoch` and :func:`validate` (the EMA weights) per epoch, the state saved
atomically after each. Gradient clipping, AMP on CUDA, DDP when launched by ``torchrun``. Because
data order and augmentation depend only on ``(seed, epoch, index)``, a run resumed after a crash
or ``kill -9`` ends with the same weights as an uninterrupted one.

Outputs in the run folder: ``model.pt`` (EMA weights + config), ``metrics.json``,
``history.csv``, ``config.json``, and for a fold: ``oof_pred.npy`` / ``oof_rows.npy`` and
``val_pred.npy`` (384-pixel frame).
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import hashlib
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from tqdm import tqdm

from facelm import layout
from facelm.atomic import atomic_open, write_json
from facelm.config import Config, ModelSpec, Train, parse_config
from facelm.data.dataset import LandmarkDataset, derive_seed
from facelm.data.limits import positive_int
from facelm.data.training_set import POINT_WEIGHTS, TrainingSet
from facelm.errors import FacelmError
from facelm.metrics import nme
from facelm.models import count_params, create_model, family_of, model_size_mb
from facelm.models.checkpoint import save_checkpoint
from facelm.models.losses import PointLoss, create_loss
from facelm.models.timm_models import HEADS
from facelm.training.loaders import TrainLoader, build_train_loader
from facelm.training.train_state import TrainState
from facelm.verbs import add_config_arguments, read_values, verb_config

EpochCallback = Callable[[int, float], None]


class BatchTeacher(Protocol):
    """What distillation hands the trainer (:class:`facelm.training.distill.Teacher`)."""

    key: str  # identifies weights and settings (part of the resume fingerprint)
    record: dict  # merged into metrics.json

    def to(self, device) -> "BatchTeacher": ...

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...  # (B,3,S,S) pixels -> (B,68,2) normalised


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclasses.dataclass(frozen=True)
class Process:
    """Where this process trains: its device, and its rank among ``world`` DDP processes."""

    device: torch.device
    rank: int = 0
    world: int = 1

    @classmethod
    def current(cls) -> "Process":
        world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
        if world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        # LOCAL_RANK picks this process's GPU, unless it sees only its own (a GPU slot, facelm.training.gpu_slot)
        device = (torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0)) % torch.cuda.device_count()}")
                  if torch.cuda.is_available() else torch.device("cpu"))
        return cls(device, rank, world)

    def log(self, message: str) -> None:
        if self.rank == 0:
            print(message, file=sys.stderr)


@torch.no_grad()
def predict_normalised(model: torch.nn.Module, dataset, batch_size: int, workers: int, device) -> np.ndarray:
    """Normalised predictions (N, 68, 2) for a dataset, in its order."""
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    out = [model(batch["image"].to(device))["landmarks"].float().cpu().numpy() for batch in loader]
    return np.concatenate(out) if out else np.zeros((0, 68, 2), np.float32)


def validate(model: torch.nn.Module, val: LandmarkDataset, device) -> tuple[float, np.ndarray]:
    """NME x100 (/384 of the source crop) of ``model`` on the validation set, and its predictions there
    (source-crop pixels)."""
    pred = predict_normalised(model, val, 64, 0, device) * val.source_size
    return 100 * float(nme(pred, val.landmarks_norm() * val.source_size).mean()), pred


def fingerprint(config: Config, entry: ModelSpec, fold: int | None, teacher_key: str | None = None) -> str:
    """What a checkpoint must match to be resumed: what the train verb reads (:data:`facelm.verbs.COMMANDS`,
    the table the workflow's rerun triggers come from too), the fold, and the teacher."""
    relevant = read_values("train", config.to_dict(), entry.to_dict())
    relevant.update(fold=fold, train=config.train_for(entry).to_dict())
    if teacher_key is not None:
        relevant.update(teacher=teacher_key, distill_weight=config.distill.weight)
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class StepLoss:
    """The loss of a step: the model's own loss on the labels (weighted by the samples' point weights),
    with a ``teacher`` ``(1 - w) * loss(labels) + w * loss(teacher's points)``, ``w = distill.weight``
    (knowledge distillation, :mod:`facelm.training.distill`; the teacher labels every point, so its
    term is unweighted)."""

    model: torch.nn.Module
    point_loss: PointLoss
    teacher: BatchTeacher | None = None
    taught: float = 0.0

    def __call__(self, out: dict, batch: dict) -> torch.Tensor:
        total, _ = self.model.loss(out, batch, self.point_loss)
        if self.teacher is None or self.taught == 0:  # weight 0: the labels alone, no teacher pass
            return total
        labels = {k: v for k, v in batch.items() if k != POINT_WEIGHTS}
        from_teacher, _ = self.model.loss(out, {**labels, "landmarks": self.teacher(batch["image"])}, self.point_loss)
        return (1 - self.taught) * total + self.taught * from_teacher


# ----------------------------------------------------------------------------- training
def train_one_epoch(state: TrainState, net: torch.nn.Module, loader: TrainLoader, step_loss: StepLoss, cfg: Train,
                    process: Process, seed: int, clock: "PhaseClock", desc: str) -> float:
    """One pass over ``loader``: forward, loss, backward, clipped step, schedule, EMA; the mean loss."""
    loader.set_epoch(state.epoch)
    net.train()
    use_amp = state.scaler.is_enabled()
    loss_sum = torch.zeros((), device=process.device)
    bar = tqdm(loader.batches, desc=desc, leave=False, disable=process.rank != 0 or None, file=sys.stderr)
    clock.lap("other")
    for batch in bar:
        clock.lap("data wait")
        batch = {k: v.to(process.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
        if loader.on_device is not None:
            draws = torch.Generator().manual_seed(derive_seed(seed, state.epoch, state.step))
            batch["image"], batch["landmarks"] = loader.on_device(batch["image"], batch["landmarks"], draws,
                                                                  process.rank, process.world)
        # float (uint8 from the batch paths) and channels-last: the batch paths' own layout, and on a CPU
        # oneDNN's convolutions train mobilenetv3_small_100 at 128 px about 1.5x faster than in NCHW
        batch["image"] = batch["image"].float().contiguous(memory_format=torch.channels_last)
        clock.lap("to device + batch augment")
        with torch.autocast(process.device.type, enabled=use_amp):
            out = net(batch["image"])
        total = step_loss({k: v.float() for k, v in out.items()}, batch)
        state.optimizer.zero_grad(set_to_none=True)
        state.scaler.scale(total).backward()
        if cfg.grad_clip > 0:
            state.scaler.unscale_(state.optimizer)
            torch.nn.utils.clip_grad_norm_(state.model.parameters(), cfg.grad_clip)
        state.scaler.step(state.optimizer)
        state.scaler.update()
        state.scheduler.step()
        state.step += 1
        clock.lap("compute")
        state.ema.update(state.model, step=state.step)
        loss_sum += total.detach()  # no per-step device sync; the bar shows the loss every 20 steps
        if state.step % 20 == 0:
            bar.set_postfix(loss=f"{float(total.detach()):.3f}")
        clock.lap("EMA + logging")
    return float(loss_sum) / len(loader)


def build_model(config: Config, entry: ModelSpec) -> tuple[torch.nn.Module, float, int]:
    """The untrained model of ``entry``, its float32 MB and parameter count; refused over ``budget_mb``."""
    model = create_model(entry.name, **entry.kwargs)
    size_mb, params = model_size_mb(model), count_params(model)
    if size_mb > config.budget_mb:
        raise FacelmError(f"model {entry.id} is {size_mb:.2f} MB, over the budget of {config.budget_mb} MB")
    return model, size_mb, params


def train_model(config: Config, model_entry: ModelSpec, fold: int | None, out_dir: str | os.PathLike,
                on_epoch: EpochCallback | None = None, teacher: BatchTeacher | None = None) -> dict:
    """Train ``model_entry`` on ``fold`` (None = all rows) into ``out_dir``; returns metrics.json's dict
    (empty on a DDP process other than rank 0). ``teacher``: distil from it (:class:`StepLoss`)."""
    clock, out_dir, cfg, process = PhaseClock(), Path(out_dir), config.train_for(model_entry), Process.current()
    seed_everything(config.seed)
    model, size_mb, params = build_model(config, model_entry)  # build
    training = TrainingSet(config, fold, cfg)
    model.fit_priors(training.landmarks_norm(training.train_rows))
    model.to(process.device)
    loader = build_train_loader(training, config.augment, cfg, process.device, config.seed, process.rank, process.world)
    cfg = cfg.for_batches(len(loader))
    state = TrainState.build(model, cfg, len(loader), cfg.amp and process.device.type == "cuda")
    net = model if process.world == 1 else torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[process.device.index] if process.device.type == "cuda" else None)
    if teacher is not None:
        teacher = teacher.to(process.device)
    step_loss = StepLoss(model, create_loss(cfg.loss), teacher, config.distill.weight if teacher is not None else 0.0)
    ckpt_path = layout.run_file(out_dir, "checkpoint")
    key = fingerprint(config, model_entry, fold, teacher.key if teacher is not None else None)
    if state.resume(ckpt_path, key, process.device):  # resume
        process.log(f"resuming {out_dir} after epoch {state.epoch}")
    elif ckpt_path.exists():
        process.log(f"ignoring {ckpt_path}: it was made with other settings")
    trained_images, trained_seconds = 0, 0.0
    clock.lap("startup")
    for epoch in range(state.epoch, cfg.epochs):  # loop
        started = time.perf_counter()
        train_loss = train_one_epoch(state, net, loader, step_loss, cfg, process, config.seed, clock,
                                     f"{model_entry.id} epoch {epoch + 1}/{cfg.epochs}")
        seconds = time.perf_counter() - started
        trained_images, trained_seconds = trained_images + len(loader) * loader.batch_size, trained_seconds + seconds
        validated = ((epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.epochs) and process.rank == 0
        val_nme = validate(state.ema.module, training.val, process.device)[0] if validated else float("nan")
        clock.lap("validation")
        state.history.append({"epoch": epoch + 1, "lr": state.optimizer.param_groups[0]["lr"],
                              "train_loss": train_loss, "val_nme_384": val_nme, "seconds": seconds})
        state.epoch = epoch + 1
        process.log(f"epoch {epoch + 1}/{cfg.epochs}: loss {train_loss:.4f}  val NME {val_nme:.3f}  ({seconds:.1f} s)")
        if process.rank == 0:
            state.save(ckpt_path, key)
        clock.lap("checkpoint")
        if on_epoch is not None and validated:
            on_epoch(epoch, val_nme)
        clock.lap("other")
    if process.world > 1:
        dist.destroy_process_group()
    if process.rank != 0:
        return {}
    extra = training.epoch_summary() | (teacher.record | {"distill_weight": step_loss.taught} if teacher is not None else {})
    return _write_outputs(config, model_entry, fold, out_dir, state.ema.module, training, state.history, cfg,  # write
                          size_mb, params, trained_images / trained_seconds if trained_seconds else None, clock, extra)


class PhaseClock:
    """Wall seconds per phase of a run (``lap(name)`` charges the time since the last lap to ``name``).

    On CUDA the work is asynchronous, so time queued on the GPU shows up in whichever phase next
    waits for it (usually "data wait" or "EMA + logging"); on the CPU the split is exact.
    """

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self._last
        self._last = now

    def summary(self) -> dict[str, float]:
        return {name: round(value, 2) for name, value in self.seconds.items()}


def _write_outputs(config, entry, fold, out_dir, model, training: TrainingSet, history, cfg, size_mb, params, img_s,
                   clock, extra: dict) -> dict:
    model = copy.deepcopy(model).cpu().eval()
    val_nme, val_pred = validate(model, training.val, "cpu")
    metrics = {
        "model": entry.id, "fold": fold, "epochs": cfg.epochs, "size": cfg.size,
        "val_nme_384": val_nme,
        "size_mb": size_mb, "params": params,
        "train_img_s": img_s if img_s is not None else _previous_speed(out_dir),
        **extra,
    }
    if fold is not None:
        scale = training.source_size(training.oof_rows)[:, None, None]
        oof_pred = predict_normalised(model, training.eval_view(training.oof_rows), 64, 0, "cpu") * scale
        oof_gt = training.landmarks_norm(training.oof_rows) * scale
        metrics["oof_nme_384"] = 100 * float(nme(oof_pred, oof_gt).mean())
        _save_npy(layout.run_file(out_dir, "oof_pred"), oof_pred.astype(np.float32))
        _save_npy(layout.run_file(out_dir, "oof_rows"), training.oof_rows.astype(np.int64))
    _save_npy(layout.run_file(out_dir, "val_pred"), val_pred.astype(np.float32))
    meta = {"input_size": cfg.size, "gamma": config.preprocess.gamma,
            "gamma_mode": config.preprocess.gamma_mode, "size_mb": size_mb, "params": params,
            "config": config.to_dict(), "model_entry": entry.to_dict(), "fold": fold, "val_nme_384": metrics["val_nme_384"]}
    save_checkpoint(layout.run_file(out_dir, "model"), model, meta)
    with atomic_open(layout.run_file(out_dir, "history"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["epoch", "lr", "train_loss", "val_nme_384", "seconds"])
        writer.writeheader()
        writer.writerows(history)
    write_json(layout.run_file(out_dir, "config"), {"config": config.to_dict(), "model_entry": entry.to_dict(), "fold": fold})
    clock.lap("final outputs")
    metrics["phase_seconds"] = clock.summary()
    print("time per phase (s): " + ", ".join(f"{k} {v:.1f}" for k, v in metrics["phase_seconds"].items()),
          file=sys.stderr)
    write_json(layout.run_file(out_dir, "metrics"), metrics)
    return metrics


def _previous_speed(out_dir: Path):
    """A rerun with nothing left to train keeps the speed measured when it did train."""
    try:
        return json.loads(layout.run_file(out_dir, "metrics").read_text()).get("train_img_s")
    except (OSError, ValueError):
        return None


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_open(path, "wb") as handle:
        np.save(handle, array)


# ----------------------------------------------------------------------------- CLI
def short_form_config(args) -> tuple[Config, ModelSpec]:
    """``--data/--val/--backbone ...`` -> a full config and model entry (schema defaults elsewhere)."""
    data = [str(Path(d).resolve()) for d in args.data]
    val = str(Path(args.val).resolve())
    kwargs = {}
    if args.head:
        if family_of(args.backbone) != "timm_models":
            raise FacelmError(f"--head applies to timm backbones; {args.backbone} has its own head")
        kwargs["head"] = args.head
    train = {k: v for k, v in {"epochs": args.epochs, "size": args.size, "loss": args.loss, "lr": args.lr,
                               "batch_size": args.batch_size, "workers": args.workers}.items() if v is not None}
    config = parse_config({
        "data_dir": ".", "train_sets": data, "splits": {"train": data[0], "val": val, "test": val},
        "results_dir": args.results_dir or "results", "models": [{"name": args.backbone, "kwargs": kwargs}], "train": train,
    }, "command line")
    return config, config.models[0]


def add_arguments(parser) -> None:
    add_config_arguments(parser, "train", required=False)
    parser.add_argument("--model", help="model entry of the config (name or model id; default: the first)")
    parser.add_argument("--fold", type=int, help="fold to hold out (default: train on all rows)")
    parser.add_argument("--data", action="append", help="... or the short form: a training folder (repeatable)")
    parser.add_argument("--val", help="validation folder (short form)")
    parser.add_argument("--backbone", help="registered model name (short form)")
    parser.add_argument("--head", choices=list(HEADS), help="head of a timm backbone")
    for flag, kind in (("--epochs", int), ("--size", int), ("--loss", str), ("--lr", float), ("--batch-size", int),
                       ("--workers", int)):
        parser.add_argument(flag, type=kind, help=f"sets train.{flag[2:].replace('-', '_')} (wins over --config)")
    parser.add_argument("--results-dir", help="where caches and runs go (default: the config's results_dir, "
                                              "or results)")
    parser.add_argument("--threads", type=positive_int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--out", help="run folder (default <results_dir>/runs/<model_id>/fold<k>)")


def _refuse_short_form(args) -> None:
    """The short form's folder and model flags describe a whole config: beside --config they would be lost."""
    for dest in ("data", "val", "backbone", "head"):
        if getattr(args, dest):
            raise FacelmError(f"--{dest} is for the short form (no --config); with --config set the config's keys "
                              "(e.g. train_sets=[...], models=[...])")


def _pick_entry(config: Config, name: str | None) -> ModelSpec:
    if name is None:
        return config.models[0]
    for entry in config.models:
        if name in (entry.name, entry.id):
            return entry
    known = ", ".join(e.id for e in config.models)
    raise FacelmError(f"no model {name!r} in the config (models: {known})")


def main(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.config:
        _refuse_short_form(args)
        config = verb_config("train", args)
        entry = _pick_entry(config, args.model)
    elif args.data and args.val and args.backbone:
        if args.overrides:
            raise FacelmError(f"KEY=VALUE overrides ({args.overrides[0]}) need --config; the short form takes flags")
        config, entry = short_form_config(args)
    else:
        raise FacelmError("give --config FILE, or --data DIR --val DIR --backbone NAME")
    out = Path(args.out) if args.out else layout.run_dir(config, entry.id, args.fold)
    started = time.perf_counter()
    metrics = train_model(config, entry, args.fold, out)
    if metrics:
        extra = f", OOF NME {metrics['oof_nme_384']:.3f}" if "oof_nme_384" in metrics else ""
        print(f"{out}: val NME {metrics['val_nme_384']:.3f}{extra} (x100, /384), {metrics['size_mb']:.2f} MB, "
              f"{time.perf_counter() - started:.0f} s")
    return 0
