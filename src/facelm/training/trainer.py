"""Train one model (optionally one fold): plain PyTorch, resumable, deterministic.

AdamW (no decay on norms and biases), cosine schedule with linear warm-up (per step), an
exponential moving average of the weights (validated and saved), gradient clipping, AMP on
CUDA, DDP when launched by ``torchrun``. ``last.ckpt`` is written atomically after every
epoch; a rerun with the same settings continues from it (after a crash or ``kill -9``), and
because data order and augmentation depend only on ``(seed, epoch, index)`` the resumed run
ends with the same weights as an uninterrupted one.

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
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch
import torch.distributed as dist
from timm.utils import ModelEmaV3
from torch.utils.data import ConcatDataset, DataLoader
from tqdm import tqdm

from facelm import layout
from facelm.atomic import atomic_open, atomic_path, write_json
from facelm.data.cache import ensure_cache
from facelm.models.checkpoint import save_checkpoint
from facelm.config import Config, ModelSpec, load_config, parse_config
from facelm.data.batch_augment import build_batch_augment
from facelm.data.batch_loader import CacheBatches, make_batch_loader
from facelm.data.dataset import LandmarkDataset, derive_seed, make_loader, set_loader_epoch
from facelm.data.limits import positive_int
from facelm.errors import FacelmError
from facelm.data.folds import make_folds, read_folds
from facelm.models.losses import create_loss
from facelm.data.pose import YAW_BINS, pose_from_landmarks, yaw_bin
from facelm.models.timm_models import HEADS
from facelm.metrics import nme
from facelm.models import count_params, create_model, model_size_mb

EpochCallback = Callable[[int, float], None]
JAW = slice(0, 17)  # the jaw-line points, where 2D and 3D label conventions differ


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


# ----------------------------------------------------------------------------- data
class RunData:
    """Caches and datasets of one run: training rows, held-out (OOF) rows, validation."""

    def __init__(self, config: Config, fold: int | None, size: int, seed: int, jaw_convention: str = "any",
                 pose_balance: float = 0.0):
        pre = config.preprocess
        self.options = [config.train_set_options.get(entry, {}) for entry in config.train_sets]
        self.jaw_convention = jaw_convention
        self.pose_balance = pose_balance
        self.sets: list[LandmarkDataset] = []
        for entry in config.train_sets:
            key = layout.dataset_key(entry)
            index = layout.check_index(config, key)
            cache = ensure_cache(layout.dataset_folder(config, entry), layout.cache_root(config, key),
                                 pre.gamma, pre.gamma_mode, size, index if index.exists() else None)
            self.sets.append(LandmarkDataset(cache))
            if not self.sets[-1].labelled:
                raise FacelmError("training set has no labels (annot.pkl)", layout.dataset_folder(config, entry))
        self.offsets = np.cumsum([0] + [len(d) for d in self.sets])
        n_rows = int(self.offsets[-1])
        if fold is None:
            self.train_rows, self.oof_rows = np.arange(n_rows), np.arange(0)
        else:
            fold_of_row = self._fold_of_rows(config, n_rows)
            if not 0 <= fold < config.folds.k:
                raise FacelmError(f"fold {fold} is outside 0..{config.folds.k - 1}")
            self.train_rows = np.flatnonzero(fold_of_row != fold)
            self.oof_rows = np.flatnonzero(fold_of_row == fold)
        val_entry = config.splits.val
        val_key = layout.dataset_key(val_entry)
        val_index = layout.check_index(config, val_key)
        val_cache = ensure_cache(layout.dataset_folder(config, val_entry), layout.cache_root(config, val_key),
                                 pre.gamma, pre.gamma_mode, size, val_index if val_index.exists() else None)
        self.val = LandmarkDataset(val_cache)
        self.augment = config.augment
        self.seed = seed

    @staticmethod
    def _fold_of_rows(config: Config, n_rows: int) -> np.ndarray:
        path = layout.folds_csv(config)
        if path.exists():
            table = read_folds(path)
            if len(table) != n_rows:
                raise FacelmError(f"folds file has {len(table)} rows but the train sets have {n_rows}; rerun `facelm folds`", path)
            return table["fold"].to_numpy()
        return make_folds(n_rows, config.folds.k, config.seed)

    def subset(self, rows: np.ndarray, augment: bool) -> ConcatDataset:
        """The datasets of ``rows``; for training (``augment``) each row as many times as its set's
        ``repeat`` times its pose copies (:meth:`pose_copies`), each copy differently augmented, and,
        under a jaw convention, with its set's ``jaw_mask`` (0: another convention)."""
        parts = []
        copies = self.pose_copies(rows) if augment else np.ones(len(rows), np.int64)
        for i, base in enumerate(self.sets):
            in_set = (rows >= self.offsets[i]) & (rows < self.offsets[i + 1])
            local = rows[in_set] - self.offsets[i]
            if not len(local):
                continue
            if not augment:
                parts.append(LandmarkDataset(base.cache_dir, local, None, self.seed))
                continue
            convention = self.options[i].get("convention", "unspecified")
            extra = None
            if self.jaw_convention != "any":
                extra = {"jaw_mask": float(convention in ("unspecified", self.jaw_convention))}
            row_copies = copies[in_set] * self.options[i].get("repeat", 1)
            for copy_no in range(int(row_copies.max())):
                parts.append(LandmarkDataset(base.cache_dir, local[row_copies > copy_no], self.augment,
                                             self.seed + copy_no, extra))
        return ConcatDataset(parts)

    def pose_copies(self, rows: np.ndarray) -> np.ndarray:
        """Copies per epoch of each row under ``train.pose_balance``: rows whose label yaw falls in a
        rarer bin (0-30, 30-60, 60-90 degrees) appear ``round((n_largest / n_bin) ** pose_balance)``
        times (at most 8), so turned faces are not drowned by frontal ones."""
        if self.pose_balance <= 0 or not len(rows):
            return np.ones(len(rows), np.int64)
        landmarks_px = self.landmarks_norm(rows) * 384.0
        yaw = np.abs(np.degrees(pose_from_landmarks(landmarks_px, 384.0)[:, 0]))
        bins = yaw_bin(yaw)
        counts = np.bincount(bins, minlength=len(YAW_BINS)).astype(np.float64)
        per_bin = np.ones_like(counts)
        present = counts > 0
        per_bin[present] = np.round((counts.max() / counts[present]) ** self.pose_balance)
        return np.clip(per_bin, 1, 8).astype(np.int64)[bins]

    def landmarks_norm(self, rows: np.ndarray) -> np.ndarray:
        return np.concatenate([d.landmarks_norm() for d in self.sets])[rows]

    def source_size(self, rows: np.ndarray) -> np.ndarray:
        """Source crop side of every row (to map normalised points to the original frame)."""
        sizes = np.concatenate([np.full(len(d), d.source_size) for d in self.sets])
        return sizes[rows].astype(np.float32)


@torch.no_grad()
def predict_normalised(model: torch.nn.Module, dataset, batch_size: int, workers: int, device) -> np.ndarray:
    """Normalised predictions (N, 68, 2) for a dataset, in its order."""
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    out = [model(batch["image"].to(device))["landmarks"].float().cpu().numpy() for batch in loader]
    return np.concatenate(out) if out else np.zeros((0, 68, 2), np.float32)


def mask_jaw(target: torch.Tensor, pred: torch.Tensor, jaw_mask: torch.Tensor) -> torch.Tensor:
    """Targets whose jaw points (0-16) are the model's own (detached) prediction where ``jaw_mask``
    is 0: a label of another convention then adds no point error (and no gradient) there."""
    keep = jaw_mask.view(-1, 1, 1).bool()
    jaw = torch.where(keep, target[:, JAW], pred[:, JAW].detach())
    return torch.cat([jaw, target[:, JAW.stop:]], dim=1)


# ----------------------------------------------------------------------------- optimisation
def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr)


def make_scheduler(optimizer, warmup_steps: int, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def fingerprint(config: Config, entry: ModelSpec, fold: int | None, teacher_key: str | None = None) -> str:
    """What a checkpoint must match to be resumed (everything that changes the training)."""
    data = config.to_dict()
    relevant = {k: data[k] for k in ("train_sets", "train_set_options", "splits", "seed", "preprocess", "augment",
                                     "folds", "data_dir")}
    relevant.update(entry=entry.to_dict(), fold=fold, train=config.train_for(entry).to_dict())
    if teacher_key is not None:
        relevant.update(teacher=teacher_key, distill_weight=config.distill.weight)
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _distributed() -> tuple[bool, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return world > 1, int(os.environ.get("RANK", "0")), world


# ----------------------------------------------------------------------------- training
def train_model(config: Config, model_entry: ModelSpec, fold: int | None, out_dir: str | os.PathLike,
                on_epoch: EpochCallback | None = None, teacher: BatchTeacher | None = None) -> dict:
    """Train ``model_entry`` on ``fold`` (None = all rows) into ``out_dir``; returns metrics.json's dict.

    With a ``teacher`` the loss is ``(1 - w) * loss(ground truth) + w * loss(teacher's points)``,
    ``w = config.distill.weight`` (knowledge distillation, :mod:`facelm.training.distill`)."""
    clock = PhaseClock()
    out_dir = Path(out_dir)
    cfg = config.train_for(model_entry)
    seed = config.seed
    distributed, rank, world = _distributed()
    # LOCAL_RANK picks this process's GPU, unless it sees only its own (a GPU slot, facelm.training.gpu_slot)
    device = (torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0)) % torch.cuda.device_count()}")
              if torch.cuda.is_available() else torch.device("cpu"))
    seed_everything(seed)

    model = create_model(model_entry.name, **model_entry.kwargs)
    size_mb, params = model_size_mb(model), count_params(model)
    if size_mb > config.budget_mb:
        raise FacelmError(f"model {model_entry.id} is {size_mb:.2f} MB, over the budget of {config.budget_mb} MB")

    data = RunData(config, fold, cfg.size, seed, cfg.jaw_convention, cfg.pose_balance)
    model.fit_priors(data.landmarks_norm(data.train_rows))
    model.to(device)
    # augment.backend batch: raw uint8 batches from the cache, augmented as batches: on a GPU by tensor
    # operations on the device, on a CPU by OpenCV in the DataLoader workers (same draws; see batch_augment)
    executor = "torch" if device.type == "cuda" else "opencv"
    on_device = build_batch_augment(config.augment, cfg.size, executor) if config.augment.backend == "batch" else None
    train_set = data.subset(data.train_rows, augment=on_device is None)
    batch_size = min(cfg.batch_size, len(train_set))
    if on_device is None:  # per sample (albumentations) in the workers; under DDP each process loads its share
        loader = make_loader(train_set, batch_size, True, cfg.workers, seed, drop_last=True, rank=rank, world=world)
    else:
        batches = CacheBatches(train_set.datasets, batch_size, True, seed, drop_last=True, rank=rank, world=world)
        if executor == "opencv" and cfg.workers > 0:
            loader, on_device = make_batch_loader(batches, on_device, cfg.workers, seed), None
        else:
            loader = batches
    steps_per_epoch = len(loader)
    # the same lr as one process: DDP averages the processes' gradients into the global batch's
    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay)
    scheduler = make_scheduler(optimizer, int(cfg.warmup_epochs * steps_per_epoch), cfg.epochs * steps_per_epoch)
    ema = ModelEmaV3(model, decay=cfg.ema_decay, use_warmup=True)
    use_amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) if distributed else model
    point_loss = create_loss(cfg.loss)
    if teacher is not None:
        teacher = teacher.to(device)
    taught = config.distill.weight if teacher is not None else 0.0

    ckpt_path = out_dir / "last.ckpt"
    print_ = (lambda *a: print(*a, file=sys.stderr)) if rank == 0 else (lambda *a: None)
    key = fingerprint(config, model_entry, fold, teacher.key if teacher is not None else None)
    start_epoch, history, step = 0, [], 0
    if ckpt_path.exists():
        try:  # weights_only: a checkpoint is a file like any other, and loading it must run no code
            state = torch.load(ckpt_path, map_location=device, weights_only=True)
        except Exception as err:  # noqa: BLE001 -- any failure to parse it means it cannot be resumed from
            raise FacelmError(f"cannot resume from this checkpoint ({type(err).__name__}); delete it to start over",
                              ckpt_path) from None
        if isinstance(state, dict) and state.get("fingerprint") == key:
            model.load_state_dict(state["model"])
            ema.module.load_state_dict(state["ema"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            torch.set_rng_state(state["rng_torch"])
            name, keys, *rest = state["rng_numpy"]
            np.random.set_state((name, np.asarray(keys, np.uint32), *rest))
            random.setstate(state["rng_python"])
            start_epoch, history, step = state["epoch"] + 1, state["history"], state["step"]
            print_(f"resuming {out_dir} after epoch {start_epoch}")
        else:
            print_(f"ignoring {ckpt_path}: it was made with other settings")

    train_images, train_seconds = 0, 0.0
    clock.lap("startup")
    for epoch in range(start_epoch, cfg.epochs):
        set_loader_epoch(loader, epoch)
        net.train()
        started, loss_sum = time.perf_counter(), torch.zeros((), device=device)
        bar = tqdm(loader, desc=f"{model_entry.id} epoch {epoch + 1}/{cfg.epochs}", leave=False,
                   disable=rank != 0 or None, file=sys.stderr)
        clock.lap("other")
        for batch in bar:
            clock.lap("data wait")
            batch = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
            if on_device is not None:
                draws = torch.Generator().manual_seed(derive_seed(seed, epoch, step))
                batch["image"], batch["landmarks"] = on_device(batch["image"], batch["landmarks"], draws, rank, world)
            # float (uint8 from the batch paths) and channels-last: the batch paths' own layout, and on a CPU
            # oneDNN's convolutions train mobilenetv3_small_100 at 128 px about 1.5x faster than in NCHW
            batch["image"] = batch["image"].float().contiguous(memory_format=torch.channels_last)
            clock.lap("to device + batch augment")
            with torch.autocast(device.type, enabled=use_amp):
                out = net(batch["image"])
            out = {k: v.float() for k, v in out.items()}
            if "jaw_mask" in batch:
                batch = {**batch, "landmarks": mask_jaw(batch["landmarks"], out["landmarks"], batch["jaw_mask"])}
            total, _ = model.loss(out, batch, point_loss)
            if teacher is not None:
                from_teacher, _ = model.loss(out, {**batch, "landmarks": teacher(batch["image"])}, point_loss)
                total = (1 - taught) * total + taught * from_teacher
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(total).backward()
            if cfg.grad_clip > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            step += 1
            clock.lap("compute")
            ema.update(model, step=step)
            loss_sum += total.detach()  # no per-step device sync; the bar shows the loss every 20 steps
            if step % 20 == 0:
                bar.set_postfix(loss=f"{float(total.detach()):.3f}")
            clock.lap("EMA + logging")
        seconds = time.perf_counter() - started
        train_images += steps_per_epoch * batch_size
        train_seconds += seconds
        train_loss = float(loss_sum) / steps_per_epoch
        validate = ((epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.epochs) and rank == 0
        val_nme = float("nan")
        if validate:
            val_nme = 100 * float(nme(predict_normalised(ema.module, data.val, 64, 0, device) * data.val.source_size,
                                      data.val.landmarks_norm() * data.val.source_size).mean())
        clock.lap("validation")
        history.append({"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], "train_loss": train_loss,
                        "val_nme_384": val_nme, "seconds": seconds})
        print_(f"epoch {epoch + 1}/{cfg.epochs}: loss {train_loss:.4f}  val NME {val_nme:.3f}  ({seconds:.1f} s)")
        if rank == 0:
            with atomic_path(ckpt_path) as tmp:
                torch.save({"fingerprint": key, "epoch": epoch, "step": step, "history": history,
                            "model": model.state_dict(), "ema": ema.module.state_dict(),
                            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                            "scaler": scaler.state_dict(), "rng_torch": torch.get_rng_state(),
                            "rng_numpy": [v.tolist() if isinstance(v, np.ndarray) else v for v in np.random.get_state()],
                            "rng_python": random.getstate()}, tmp)
        clock.lap("checkpoint")
        if on_epoch is not None and validate:
            on_epoch(epoch, val_nme)
        clock.lap("other")

    if distributed:
        dist.destroy_process_group()
    if rank != 0:
        return {}
    extra = teacher.record | {"distill_weight": taught} if teacher is not None else {}
    return _write_outputs(config, model_entry, fold, out_dir, ema.module, data, history, cfg, size_mb, params,
                          train_images / train_seconds if train_seconds else None, clock, extra)


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


def _write_outputs(config, entry, fold, out_dir, model, data, history, cfg, size_mb, params, img_s, clock,
                   extra: dict) -> dict:
    model = copy.deepcopy(model).cpu().eval()
    val_pred = predict_normalised(model, data.val, 64, 0, "cpu") * data.val.source_size
    val_gt = data.val.landmarks_norm() * data.val.source_size
    metrics = {
        "model": entry.id, "fold": fold, "epochs": cfg.epochs, "size": cfg.size,
        "val_nme_384": 100 * float(nme(val_pred, val_gt).mean()),
        "size_mb": size_mb, "params": params,
        "train_img_s": img_s if img_s is not None else _previous_speed(out_dir),
        **extra,
    }
    if fold is not None:
        oof_set = data.subset(data.oof_rows, augment=False)
        scale = data.source_size(data.oof_rows)[:, None, None]
        oof_pred = predict_normalised(model, oof_set, 64, 0, "cpu") * scale
        oof_gt = data.landmarks_norm(data.oof_rows) * scale
        metrics["oof_nme_384"] = 100 * float(nme(oof_pred, oof_gt).mean())
        _save_npy(out_dir / "oof_pred.npy", oof_pred.astype(np.float32))
        _save_npy(out_dir / "oof_rows.npy", data.oof_rows.astype(np.int64))
    _save_npy(out_dir / "val_pred.npy", val_pred.astype(np.float32))
    meta = {"input_size": cfg.size, "gamma": config.preprocess.gamma,
            "gamma_mode": config.preprocess.gamma_mode, "size_mb": size_mb, "params": params,
            "config": config.to_dict(), "model_entry": entry.to_dict(), "fold": fold, "val_nme_384": metrics["val_nme_384"]}
    save_checkpoint(out_dir / "model.pt", model, meta)
    with atomic_open(out_dir / "history.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["epoch", "lr", "train_loss", "val_nme_384", "seconds"])
        writer.writeheader()
        writer.writerows(history)
    write_json(out_dir / "config.json", {"config": config.to_dict(), "model_entry": entry.to_dict(), "fold": fold})
    clock.lap("final outputs")
    metrics["phase_seconds"] = clock.summary()
    print("time per phase (s): " + ", ".join(f"{k} {v:.1f}" for k, v in metrics["phase_seconds"].items()),
          file=sys.stderr)
    write_json(out_dir / "metrics.json", metrics)
    return metrics


def _previous_speed(out_dir: Path):
    """A rerun with nothing left to train keeps the speed measured when it did train."""
    try:
        return json.loads((out_dir / "metrics.json").read_text()).get("train_img_s")
    except (OSError, ValueError):
        return None


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_open(path, "wb") as handle:
        np.save(handle, array)


# ----------------------------------------------------------------------------- CLI
def short_form_config(args) -> tuple[Config, ModelSpec]:
    """``--data/--val/--backbone ...`` -> a full config and model entry (schema defaults elsewhere)."""
    from facelm.models import resolve_name, timm_models

    data = [str(Path(d).resolve()) for d in args.data]
    val = str(Path(args.val).resolve())
    kwargs = {}
    if args.head:
        if not hasattr(timm_models, resolve_name(args.backbone)):
            raise FacelmError(f"--head applies to timm backbones; {args.backbone} has its own head")
        kwargs["head"] = args.head
    train = {k: v for k, v in {"epochs": args.epochs, "size": args.size, "loss": args.loss, "lr": args.lr,
                               "batch_size": args.batch_size, "workers": args.workers}.items() if v is not None}
    config = parse_config({
        "data_dir": ".", "train_sets": data, "splits": {"train": data[0], "val": val, "test": val},
        "results_dir": args.results_dir, "models": [{"name": args.backbone, "kwargs": kwargs}], "train": train,
    }, "command line")
    return config, config.models[0]


def add_arguments(parser) -> None:
    parser.add_argument("--config", help="config.yaml (with --model/--fold) ...")
    parser.add_argument("overrides", nargs="*", help="KEY=VALUE config overrides (dotted keys)")
    parser.add_argument("--model", help="model entry of the config (name or model id; default: the first)")
    parser.add_argument("--fold", type=int, help="fold to hold out (default: train on all rows)")
    parser.add_argument("--params", help="best_params.json from `facelm tune` to apply first")
    parser.add_argument("--data", action="append", help="... or the short form: a training folder (repeatable)")
    parser.add_argument("--val", help="validation folder (short form)")
    parser.add_argument("--backbone", help="registered model name (short form)")
    parser.add_argument("--head", choices=list(HEADS), help="head of a timm backbone")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--size", type=int)
    parser.add_argument("--loss")
    parser.add_argument("--lr", type=float)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--results-dir", default="results", help="where caches go (short form)")
    parser.add_argument("--threads", type=positive_int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--out", help="run folder (default <results_dir>/runs/<model_id>/fold<k>)")


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
        config = load_config(args.config, args.overrides)
        if args.params:
            from facelm.training.params import apply_params, read_best_params

            config = apply_params(config, read_best_params(args.params))
        entry = _pick_entry(config, args.model)
        if args.params and config.tune.model.name == entry.name:
            entry = dataclasses.replace(entry, name=config.tune.model.name, kwargs=config.tune.model.kwargs)
    elif args.data and args.val and args.backbone:
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
