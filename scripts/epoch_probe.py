"""How far would more training, or a wider network, take `patchres`? Train its architecture for
several budgets on CIFAKE's training split and report validation accuracy and AUROC.

The CPU recipe's hour buys `patchres` 13 epochs. This probe runs where an hour is not the limit:
a GPU box with PyTorch and no TensorFlow (so the network is rebuilt here in PyTorch, layer for
layer: same layers, Keras' batch-norm momentum and epsilon, AdamW with Keras' epsilon, one
warm-up epoch then cosine decay, the registry's recipe):

    python scripts/epoch_probe.py pack ../shared/data/cifake/cifake.zip probe-data --parts 2
    python scripts/epoch_probe.py run probe-data patchres:13 patchres:40 patchres:13:width=64 \\
        --budget-s 400 --out probe.json

`pack` needs fakelens; `run` needs PyTorch, Pillow and fakelens (for the recipe and metrics).
Images travel as their original JPEG bytes (a third of their decoded size), in parts that fit a
transfer limit. The train/validation split is `fakelens train`'s (grouped by hash, seed 42), so
the figures compare with its validation accuracy. Unlike the CPU recipe, augmentation is flips
and shifts of up to 3 px only (the web degradations are TensorFlow ops), and there is no
calibration: read the figures as what more compute buys, not as a shipped model's.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

SHIFT = 3  # as fakelens.training.augment.SHIFT


def pack(data: str, out: str, parts: int) -> None:
    """Write val.npz and train-<i>.npz: concatenated JPEG bytes, their end offsets, labels."""
    from fakelens.config import TrainConfig
    from fakelens.data.dataset import load_labelled, train_val
    from fakelens.data.layout import open_source

    config = TrainConfig()
    train, val = train_val(load_labelled(data), config.val_fraction, config.seed)
    Path(out).mkdir(parents=True, exist_ok=True)
    with open_source(data) as source:
        subsets = {"val": val} | {
            f"train-{i}": train.select(np.arange(i, len(train.names), parts)) for i in range(parts)
        }  # interleaved, so that each part holds both classes
        for name, subset in subsets.items():
            blobs = [source.read(str(n)) for n in subset.names]
            np.savez(
                Path(out) / f"{name}.npz",
                jpeg=np.frombuffer(b"".join(blobs), np.uint8),
                ends=np.cumsum([len(b) for b in blobs]),
                is_ai=subset.is_ai,
            )
            print(f"{name}: {len(blobs):,} images, {sum(map(len, blobs)) / 1e6:.1f} MB")


def _decode_part(path: Path) -> tuple[list[np.ndarray], np.ndarray]:
    from PIL import Image

    with np.load(path) as f:
        jpeg, ends, is_ai = f["jpeg"].tobytes(), f["ends"], f["is_ai"]
    starts = np.concatenate([[0], ends[:-1]])
    with ThreadPoolExecutor() as pool:
        images = pool.map(
            lambda s, e: np.asarray(Image.open(io.BytesIO(jpeg[s:e])).convert("RGB")), starts, ends
        )
        return list(images), is_ai


def _load(paths: list[Path], device):
    """(N, 3, H, W) uint8 images and (N,) float labels, on `device`."""
    import torch

    parts = [_decode_part(path) for path in paths]
    images = np.stack([image for part in parts for image in part[0]]).transpose(0, 3, 1, 2)
    labels = np.concatenate([part[1] for part in parts]).astype("float32")
    return torch.from_numpy(images).to(device), torch.from_numpy(labels).to(device)


def _patchres(width: int, blocks: tuple[int, ...]):
    """fakelens.models.patchres.build_patchres, in PyTorch."""
    from torch import nn

    def conv_bn(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> list[nn.Module]:
        conv = nn.Conv2d(cin, cout, kernel, stride, padding=(kernel - 1) // 2, bias=False)
        nn.init.xavier_uniform_(conv.weight)  # Keras' glorot_uniform
        return [conv, nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01)]  # Keras' defaults

    class Residual(nn.Module):
        def __init__(self, channels: int) -> None:
            super().__init__()
            self.body = nn.Sequential(*conv_bn(channels, channels), nn.ReLU(), *conv_bn(channels, channels))

        def forward(self, x):
            return (x + self.body(x)).relu()

    layers: list[nn.Module] = [*conv_bn(3, width, kernel=2, stride=2), nn.ReLU()]
    for stage, count in enumerate(blocks):
        if stage:
            layers += [*conv_bn(width, width * 2, stride=2), nn.ReLU()]
            width *= 2
        layers += [Residual(width) for _ in range(count)]
    head = nn.Linear(width, 1)
    nn.init.xavier_uniform_(head.weight)
    nn.init.zeros_(head.bias)
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), head)


ARCHITECTURES = {"patchres": (2, 2), "patchres-deep": (2, 2, 2)}


def _parse(spec: str) -> tuple[str, int, dict[str, float]]:
    """Split "patchres:40:width=64" into ("patchres", 40, {"width": 64.0})."""
    name, epochs, *overrides = spec.split(":")
    return name, int(epochs), {k: float(v) for k, v in (o.split("=") for o in overrides)}


def _augment(x):
    """Random mirror and a shift of up to SHIFT px (reflect-padded, cropped back), per image."""
    import torch

    n, _, h, w = x.shape
    x = torch.where(torch.rand(n, 1, 1, 1, device=x.device) < 0.5, x.flip(3), x)
    padded = torch.nn.functional.pad(x, (SHIFT,) * 4, mode="reflect")
    dy, dx = (torch.randint(0, 2 * SHIFT + 1, (n, 1), device=x.device) for _ in range(2))
    rows = (dy + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx + torch.arange(w, device=x.device))[:, None, None, :]
    images = torch.arange(n, device=x.device)[:, None, None, None]
    channels = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[images, channels, rows, cols]


def _train_one(spec: str, train, val, seed: int) -> dict:
    import torch

    from fakelens.evaluation.metrics import detection_metrics
    from fakelens.models import get_spec

    name, epochs, overrides = _parse(spec)
    recipe = get_spec(name).recipe
    batch = int(overrides.get("batch", recipe.batch_size))
    rate = overrides.get("lr", recipe.learning_rate)
    torch.manual_seed(seed)
    model = _patchres(int(overrides.get("width", 32)), ARCHITECTURES[name]).to(train[0].device)
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=rate, weight_decay=recipe.weight_decay, eps=1e-7)
    steps = -(-len(train[0]) // batch)
    total = epochs * steps
    warmup = min(steps, total // 2)
    schedule = torch.optim.lr_scheduler.LambdaLR(  # fakelens.training.run.make_optimizer's shape
        optimizer,
        lambda s: (
            0.1 + 0.9 * s / warmup
            if s < warmup
            else 0.5 * (1 + np.cos(np.pi * (s - warmup) / (total - warmup)))
        ),
    )

    def scores(images) -> np.ndarray:
        model.eval()
        with torch.no_grad():
            logits = [model(images[i : i + 4096].float().div(255)) for i in range(0, len(images), 4096)]
        return torch.cat(logits).sigmoid().flatten().cpu().numpy()

    by_epoch, started = [], time.perf_counter()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(train[0]), device=train[0].device)
        for i in range(0, len(order), batch):
            index = order[i : i + batch]
            x = _augment(train[0][index].float().div(255)).contiguous(memory_format=torch.channels_last)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x).flatten(), train[1][index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        by_epoch.append(round(float(((scores(val[0]) >= 0.5) == val[1].cpu().numpy()).mean()), 4))
        print(f"{spec} epoch {len(by_epoch)}: val accuracy {by_epoch[-1]}", flush=True)
    seconds = time.perf_counter() - started
    metrics = detection_metrics(val[1].cpu().numpy(), scores(val[0]), 0.5)
    return {
        "spec": spec,
        "params": sum(p.numel() for p in model.parameters()),
        "epochs": epochs,
        "seconds": round(seconds, 1),
        "val_accuracy": metrics["accuracy"],
        "val_auroc": metrics["auroc"],
        "val_accuracy_by_epoch": by_epoch,
    }


def run(data: str, specs: list[str], out: str, budget_s: float) -> None:
    """Train each spec in turn, writing `out` after each; skip what the budget cannot finish."""
    os.environ.setdefault("KERAS_BACKEND", "torch")  # the registry's recipes import Keras
    import torch

    from fakelens.config import TrainConfig
    from fakelens.fsutil import write_json_atomic

    torch.backends.cudnn.benchmark = True
    device = "cuda" if torch.cuda.is_available() else "cpu"
    train = _load(sorted(Path(data).glob("train-*.npz")), device)
    val = _load([Path(data) / "val.npz"], device)
    print(f"train {len(train[0]):,}, val {len(val[0]):,} images on {device}", flush=True)
    report: dict = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "torch": torch.__version__,
        "train_images": len(train[0]),
        "augmentation": f"flips, shifts up to {SHIFT} px",
        "runs": [],
    }
    started, per_epoch = time.perf_counter(), 0.0
    for spec in specs:
        left = budget_s - (time.perf_counter() - started)
        if per_epoch and _parse(spec)[1] * per_epoch > left:
            report["runs"].append({"spec": spec, "skipped": f"{left:.0f} s left"})
            continue
        result = _train_one(spec, train, val, TrainConfig().seed)
        per_epoch = max(per_epoch, result["seconds"] / result["epochs"])
        report["runs"].append(result)
        write_json_atomic(Path(out), report)
        print(result, flush=True)
    write_json_atomic(Path(out), report)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    packing = commands.add_parser("pack", help="write the training and validation images as parts")
    packing.add_argument("data", help="CIFAKE zip or folder in the Kaggle layout")
    packing.add_argument("out", help="folder for the parts")
    packing.add_argument("--parts", type=int, default=2)
    running = commands.add_parser("run", help="train each MODEL:EPOCHS[:KEY=VALUE...] and report")
    running.add_argument("data", help="folder written by pack")
    running.add_argument("specs", nargs="+", help="e.g. patchres:40, patchres:13:width=64:batch=256:lr=0.006")
    running.add_argument("--out", required=True, help="JSON report, rewritten after each run")
    running.add_argument("--budget-s", type=float, default=float("inf"))
    args = parser.parse_args(argv)
    if args.command == "pack":
        pack(args.data, args.out, args.parts)
    else:
        run(args.data, args.specs, args.out, args.budget_s)


if __name__ == "__main__":
    main(sys.argv[1:])
