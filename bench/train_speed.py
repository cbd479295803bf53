"""Training images/s beside data-loader images/s: fer-train's resnet18 on the real CK+ faces.

Aligns ../shared/data/ckplus into a temporary work folder (or reads `--work`) and makes 5
subject folds, through `fer_prep.runner.run`; then, on fold 0's training part (repeated to
`--images` faces) at resnet18's default size (224 px), measures, in one run:
- loader: iterating fer-train's DataLoader alone (chips decoded once into memory, collation,
  pinned memory on CUDA; the crop and mirror run on the device, in `train`), no model; and the
  same loader decoding every chip each time, as it does for a dataset too big for the cache;
- train: augmentation + forward + backward + AdamW step on batches already on the device (bf16
  autocast and channels_last on CUDA), no loader;
- epoch: one training epoch with both, as `fer-train` runs it.
Prints images/s side by side and loader / train: above 1, the loader is not the bottleneck.

    python bench/train_speed.py [--device auto|cpu|cuda] [--batch-size 64] [--workers N]
                                [--images 2048] [--steps 20] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import Dataset

from fer_models.data import FaceDataset, make_loader
from fer_models.inputs import read_inputs
from fer_models.models import create_model, model_class
from fer_models.train import determinism, resolve_device, train_epoch
from fer_prep.runner import run

MODEL = "resnet18"


class Repeated(Dataset):
    """A dataset seen `times` times over, to time more faces than the shared CK+ copy holds."""

    def __init__(self, base: FaceDataset, times: int) -> None:
        self.base, self.times = base, times

    def __len__(self) -> int:
        return len(self.base) * self.times

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        i, seed = key
        return self.base[(i % len(self.base), seed)]


def prepare(work: Path, shared: Path) -> None:
    """Faces and folds of the shared CK+ sequences, unless `work` has them already."""
    if (work / "ckplus/folds/manifest.parquet").is_file():
        return
    run("ckplus", "align", work, root=shared / "data/ckplus")
    run("ckplus", "folds", work, k=5)


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def time_loader(loader) -> tuple[float, int, float]:
    """(images/s after the first batch, images, seconds to the first batch)."""
    start = time.perf_counter()
    it = iter(loader)
    first = next(it)
    ready = time.perf_counter()
    images = 0
    for batch in it:
        images += len(batch["label"])
    rate = images / (time.perf_counter() - ready) if images else len(first["label"]) / (
        ready - start)
    return rate, images + len(first["label"]), ready - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path,
                        default=Path(os.environ.get("FER_PREP_SHARED", "../shared")))
    parser.add_argument("--work", type=Path, help="fer-prep work folder (default: a temporary one)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--images", type=int, help="faces per timed pass [2048 CUDA, 256 CPU]")
    parser.add_argument("--steps", type=int, help="timed training steps [20 CUDA, 4 CPU]")
    args = parser.parse_args()
    dev = resolve_device(args.device)
    cuda = dev.type == "cuda"
    n_images = args.images or (2048 if cuda else 256)
    steps = args.steps or (20 if cuda else 4)
    size = model_class(MODEL).defaults["size"]

    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        prepare(work, args.shared)
        inputs = read_inputs("ckplus", work)
        rows = inputs.part(0, "train")
        base = FaceDataset(inputs, rows, size, train=True)
        data = Repeated(base, max(1, -(-n_images // len(base))))
        device_name = torch.cuda.get_device_name() if cuda else f"CPU ({os.cpu_count()} cores)"
        print(f"{MODEL}, {size} px, batch {args.batch_size}, {args.workers} loader workers, "
              f"{dev.type}: {device_name}\nCK+ fold 0 training part: {len(base)} real faces, "
              f"seen {data.times}× = {len(data)} per pass")

        loader = make_loader(data, args.batch_size, True, 0, args.workers, cuda)
        loader_rate, loader_images, startup = time_loader(loader)
        uncached = Repeated(FaceDataset(inputs, rows, size, train=True, cache_bytes=0),
                            data.times)
        decode_rate, _, _ = time_loader(make_loader(uncached, args.batch_size, True, 0,
                                                    args.workers, cuda))

        torch.manual_seed(0)
        with determinism(dev):
            net = create_model(MODEL, len(inputs.classes)).to(dev)
            if cuda:
                net.to(memory_format=torch.channels_last)
                net.channels_last = True
            opt = torch.optim.AdamW(net.param_groups(1e-3), weight_decay=1e-4)
            batches = [{k: v.to(dev) for k, v in b.items()}
                       for b, _ in zip(loader, range(min(steps, 8)), strict=False)]
            train_epoch(net, opt, batches[:2], dev, "warm-up", progress=False)
            timed = [batches[i % len(batches)] for i in range(steps)]
            sync(dev)
            start = time.perf_counter()
            train_epoch(net, opt, timed, dev, "train", progress=False)
            sync(dev)
            trained = sum(len(b["label"]) for b in timed)
            train_rate = trained / (time.perf_counter() - start)
            loader.sampler.set_epoch(1)
            epoch = train_epoch(net, opt, loader, dev, "epoch", progress=False)

    print(f"\n{'measure':38s} {'images':>7s} {'images/s':>9s}")
    print(f"{'loader alone (no model)':38s} {loader_images:>7d} {loader_rate:>9.0f}   "
          f"(first batch after {startup:.2f} s)")
    print(f"{'loader decoding every chip (no cache)':38s} {loader_images:>7d} {decode_rate:>9.0f}")
    print(f"{'train: forward+backward+step':38s} {trained:>7d} "
          f"{train_rate:>9.0f}")
    print(f"{'one epoch, loader + training':38s} {len(data):>7d} "
          f"{epoch['images_per_s']:>9.0f}")
    verdict = "not the bottleneck" if loader_rate >= train_rate else "THE BOTTLENECK"
    print(f"\nloader / train = {loader_rate / train_rate:.1f}: the loader is {verdict}")


if __name__ == "__main__":
    main()
