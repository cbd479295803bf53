"""Training images/s beside data-loader images/s: every fer-train model on the real CK+ faces.

Aligns ../shared/data/ckplus into a temporary work folder (or reads `--work`), makes 5 subject
folds and the masks (FMPN's), through `fer_prep.runner.run`; then, for each model at its own
resolution and defaults, on fold 0's training part (repeated to `--images` faces, read as
`fer-train` reads it: `fer_models.train.fold_loaders` / `fold_model`), measures in one run:
- loader: iterating the model's DataLoader alone (chips decoded once into memory, collation,
  pinned memory on CUDA; the crop and mirror run on the device, in `train`), no model;
- train: augmentation + forward + backward + AdamW step on batches already on the device (bf16
  autocast and channels_last on CUDA), no loader;
- epoch: one training epoch with both, as `fer-train` runs it.
Prints a row per model: images/s of each, and loader / train (above 1: the loader is not the
bottleneck). Clip models (fan) count every frame of a clip as an image.

    python bench/train_speed.py [--device auto|cpu|cuda] [--models resnet18,fan,...]
                                [--batch-size N] [--workers N] [--images N] [--steps N]
                                [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import Dataset

from fer_models.data import make_loader
from fer_models.inputs import masks_order, read_inputs
from fer_models.models import list_models, model_class
from fer_models.train import (
    Run,
    determinism,
    fold_loaders,
    fold_model,
    resolve_config,
    resolve_device,
    train_epoch,
)
from fer_prep.runner import run

#: the fold timed
FOLD = 0


class Repeated(Dataset):
    """A dataset seen `times` times over, to time more faces than the shared CK+ copy holds."""

    def __init__(self, base: Dataset, times: int) -> None:
        self.base, self.times = base, times
        self.targets = base.targets.repeat(times)

    def __len__(self) -> int:
        return len(self.base) * self.times

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        i, seed = key
        return self.base[(i % len(self.base), seed)]


def prepare(work: Path, shared: Path) -> None:
    """Faces, folds and masks of the shared CK+ sequences, unless `work` has them already."""
    if (work / "ckplus/masks/stage.json").is_file():
        return
    run("ckplus", "align", work, root=shared / "data/ckplus")
    run("ckplus", "folds", work, k=5)
    run("ckplus", "masks", work)


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def images_of(batch: dict[str, torch.Tensor]) -> int:
    """Faces in a batch (every frame of a clip)."""
    return batch["image"].shape[:-3].numel()


def time_loader(loader) -> float:
    """Images/s after the first batch."""
    it = iter(loader)
    next(it)  # workers started, first batch made
    ready = time.perf_counter()
    images = sum(images_of(batch) for batch in it)
    return images / (time.perf_counter() - ready) if images else float("nan")


def measure(name: str, work: Path, dev: torch.device, args: argparse.Namespace, tmp: Path
            ) -> dict[str, float | int | str]:
    """One model's loader, train and epoch images/s at its own size and defaults."""
    cuda, cls = dev.type == "cuda", model_class(name)
    batch = args.batch_size or (cls.defaults["batch_size"] if cuda else 16)
    config = resolve_config(name, batch_size=batch)
    inputs = read_inputs("ckplus", work, masks_order(work, "ckplus") if cls.needs_masks else None)
    bench = Run(config=config, inputs=inputs, device=dev, folder=tmp / name,
                workers=args.workers, cache_bytes=4 << 30, resume=False, progress=False,
                echo=lambda _: None)
    loaders, masks = fold_loaders(bench, FOLD)
    base = loaders["train"].dataset
    n_images = args.images or (2048 if cuda else 4 * batch)
    data = Repeated(base, max(1, -(-n_images // len(base))))
    loader = make_loader(data, batch, True, 0, args.workers, cuda)
    loader_rate = time_loader(loader)
    with determinism(dev):
        net, _ = fold_model(bench, FOLD, masks, inputs.part(FOLD, "train"), fresh=True)
        opt = torch.optim.AdamW(net.param_groups(config.lr), weight_decay=config.weight_decay)
        steps = args.steps or (20 if cuda else 3)
        batches = [{k: v.to(dev) for k, v in b.items()}
                   for b, _ in zip(loader, range(min(steps, 8)), strict=False)]
        train_epoch(net, opt, batches[:1], dev, "warm-up", progress=False)
        timed = [batches[i % len(batches)] for i in range(steps)]
        sync(dev)
        start = time.perf_counter()
        train_epoch(net, opt, timed, dev, "train", progress=False)
        sync(dev)
        train_rate = sum(images_of(b) for b in timed) / (time.perf_counter() - start)
        loader.sampler.set_epoch(1)
        epoch = train_epoch(net, opt, loader, dev, "epoch", progress=False)
    return {"model": name, "size": config.size, "batch": batch, "items": len(data),
            "loader": loader_rate, "train": train_rate, "epoch": epoch["images_per_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path,
                        default=Path(os.environ.get("FER_PREP_SHARED", "../shared")))
    parser.add_argument("--work", type=Path, help="fer-prep work folder (default: a temporary one)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--models", default=",".join(list_models()),
                        help="comma-separated models [all]")
    parser.add_argument("--batch-size", type=int,
                        help="batch size [each model's default on CUDA, 16 on the CPU]")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--images", type=int, help="items per epoch [2048 CUDA, 4 batches CPU]")
    parser.add_argument("--steps", type=int, help="timed training steps [20 CUDA, 3 CPU]")
    args = parser.parse_args()
    dev = resolve_device(args.device)
    device_name = (torch.cuda.get_device_name() if dev.type == "cuda"
                   else f"CPU ({os.cpu_count()} cores)")
    print(f"fer-train models on {dev.type}: {device_name}, {args.workers} loader workers; "
          f"CK+ fold {FOLD}'s training part")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp) / "work"
        prepare(work, args.shared)
        for name in args.models.split(","):
            rows.append(measure(name, work, dev, args, Path(tmp) / "runs"))
            print(f"  {name}: done", flush=True)
    print(f"\n{'model':13s} {'px':>4s} {'batch':>5s} {'items':>6s} {'loader/s':>9s} "
          f"{'train/s':>8s} {'epoch/s':>8s} {'loader/train':>12s}")
    for r in rows:
        print(f"{r['model']:13s} {r['size']:>4d} {r['batch']:>5d} {r['items']:>6d} "
              f"{r['loader']:>9.0f} {r['train']:>8.1f} {r['epoch']:>8.1f} "
              f"{r['loader'] / r['train']:>12.1f}")
    print("\nimages/s (a clip's frames each count); loader/train above 1: the loader is not "
          "the bottleneck")


if __name__ == "__main__":
    main()
