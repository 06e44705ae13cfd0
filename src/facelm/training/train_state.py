"""What a training run carries from step to step, and what ``last.ckpt`` saves of it (:class:`TrainState`).

AdamW (no decay on norms and biases), a cosine schedule with linear warm-up (per step), an
exponential moving average of the weights, the AMP gradient scaler, the progress (epoch, step,
history) and every random generator's state. :meth:`TrainState.save` writes it atomically after
each epoch; :meth:`TrainState.resume` restores it from a checkpoint of the same settings, so a run
continued after a crash or ``kill -9`` ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from timm.utils import ModelEmaV3

from facelm.atomic import atomic_path
from facelm.config import Train
from facelm.errors import FacelmError


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


@dataclass
class TrainState:
    """The model and everything that trains it; ``epoch`` is the next epoch to run."""

    model: torch.nn.Module
    ema: ModelEmaV3
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    epoch: int = 0
    step: int = 0
    history: list[dict] = field(default_factory=list)

    @classmethod
    def build(cls, model: torch.nn.Module, cfg: Train, steps_per_epoch: int, use_amp: bool) -> "TrainState":
        optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay)
        scheduler = make_scheduler(optimizer, int(cfg.warmup_epochs * steps_per_epoch), cfg.epochs * steps_per_epoch)
        ema = ModelEmaV3(model, decay=cfg.ema_decay, use_warmup=True)
        return cls(model, ema, optimizer, scheduler, torch.amp.GradScaler("cuda", enabled=use_amp))

    def save(self, path: Path, key: str) -> None:
        """Write the state after epoch ``epoch - 1`` to ``path`` atomically, tagged with ``key``."""
        with atomic_path(path) as tmp:
            torch.save({"fingerprint": key, "epoch": self.epoch - 1, "step": self.step, "history": self.history,
                        "model": self.model.state_dict(), "ema": self.ema.module.state_dict(),
                        "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                        "scaler": self.scaler.state_dict(), "rng_torch": torch.get_rng_state(),
                        "rng_numpy": [v.tolist() if isinstance(v, np.ndarray) else v for v in np.random.get_state()],
                        "rng_python": random.getstate()}, tmp)

    def resume(self, path: Path, key: str, device) -> bool:
        """Restore from ``path`` when it exists and was made with settings ``key``; whether it did."""
        if not path.exists():
            return False
        try:  # weights_only: a checkpoint is a file like any other, and loading it must run no code
            state = torch.load(path, map_location=device, weights_only=True)
        except Exception as err:  # noqa: BLE001 -- any failure to parse it means it cannot be resumed from
            raise FacelmError(f"cannot resume from this checkpoint ({type(err).__name__}); delete it to start over",
                              path) from None
        if not isinstance(state, dict) or state.get("fingerprint") != key:
            return False
        self.model.load_state_dict(state["model"])
        self.ema.module.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng_torch"])
        name, keys, *rest = state["rng_numpy"]
        np.random.set_state((name, np.asarray(keys, np.uint32), *rest))
        random.setstate(state["rng_python"])
        self.epoch, self.history, self.step = state["epoch"] + 1, state["history"], state["step"]
        return True
