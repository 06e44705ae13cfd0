"""Training throughput (images/s: forward + loss + backward + optimiser step) per model.

    .venv/bin/python benchmarks/train_speed.py [--size 128] [--batch-size 32] [--models a b ...]

Uses synthetic batches (the loader is measured by benchmarks/loader.py) in channels-last memory
format, as `facelm train` feeds them (``--nchw`` for contiguous NCHW), on the CPU and, when one is
present, on the GPU. Prints a table and ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from facelm.landmarks68 import mean_shape
from facelm.models.losses import create_loss
from facelm.models import create_model, list_families

DEFAULT_MODELS = ["mobilenetv3_small_100", "mobilenetv3_large_100", "convnext_atto", "efficientnet_b0", "lcnet_100",
                  "ghostnet_100"]


def images_per_second(name: str, kwargs: dict, size: int, batch: int, device: str, steps: int,
                      channels_last: bool = True) -> float:
    """Training images/s of one model on synthetic batches; ``channels_last`` inputs as `facelm train` feeds them."""
    model = create_model(name, **kwargs).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
    images = torch.rand(batch, 3, size, size, device=device) * 255
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    target = torch.from_numpy(mean_shape(size) / size).to(device).expand(batch, 68, 2).contiguous()
    batch_dict = {"image": images, "landmarks": target}
    loss_fn = create_loss("wing")

    def step():
        total, _ = model.loss(model(images), batch_dict, loss_fn)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()

    step()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--nchw", action="store_true", help="contiguous NCHW inputs instead of channels-last")
    parser.add_argument("--models", nargs="*", help="registered names (default: the timm backbones + each family default)")
    args = parser.parse_args()
    specs = [(m, {"head": "heatmap"}) for m in DEFAULT_MODELS] + [(f, {}) for f in list_families()]
    if args.models:
        specs = [(m, {}) for m in args.models]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    results = []
    print(f"{'model':<32}" + "".join(f"{d + ' img/s':>14}" for d in devices))
    for name, kwargs in specs:
        row = {"model": name + (f"-{kwargs['head']}" if kwargs else "")}
        for device in devices:
            row[device] = round(images_per_second(name, kwargs, args.size, args.batch_size, device,
                                                  args.steps if device == "cpu" else 20, not args.nchw), 1)
        results.append(row)
        print(f"{row['model']:<32}" + "".join(f"{row[d]:>14.1f}" for d in devices))
    print(json.dumps({"size": args.size, "batch_size": args.batch_size, "threads": torch.get_num_threads(),
                      "memory_format": "nchw" if args.nchw else "channels_last",
                      "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
