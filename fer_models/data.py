"""PyTorch datasets over the manifests: single faces (`FaceDataset`) and clips (`ClipDataset`).

Items are uint8 tensors and the loader does almost nothing else: chips are decoded once into
memory when they fit (`cache_bytes`; CK+ whole is ~200 MB at 224 px), so an epoch reads memory,
not PNGs, and the training augmentation runs on the batch, on the training device (`augment`),
not per item in the workers. The model normalises on the device too.

Training augmentation, the same for every model: a square crop of 80–100 % of the chip's area
resized back, a mirror image half the time, and with `rotate=D` a turn of up to ±D° about the
crop's centre (Emotion-FAN: mirror only; FMPN: crop + mirror; Landmark-Driven: mirror + ±5°
rotation + colour jitter), applied alike to the face (every frame of a clip), its mask and its
landmarks (mirrored landmarks swap left and right: `MIRROR68`). Each
item's draw comes from a seed the sampler gives it, one per item and epoch, so a run sees the same
batches whatever the number of workers, and a resumed run those the uninterrupted one saw.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

from fer_models.inputs import N_SHAPES, Inputs, Masks
from fer_prep.faces import BLENDSHAPES
from fer_prep.images import read_image

Item = dict[str, torch.Tensor]
#: crop area range of the training augmentation (fraction of the chip)
CROP_AREA = (0.8, 1.0)
#: the 68-point index of each point's mirror image (jaw, brows, nose, eyes, mouth)
MIRROR68 = (
    list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30]
    + list(range(35, 30, -1)) + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
    + list(range(54, 47, -1)) + list(range(59, 54, -1)) + list(range(64, 59, -1))
    + list(range(67, 64, -1))
)
#: each blendshape's mirror image (…Left ↔ …Right: the face's own sides swap), then the pose
MIRROR_SHAPES = [
    BLENDSHAPES.index(n.replace("Left", "\0").replace("Right", "Left").replace("\0", "Right"))
    for n in BLENDSHAPES] + [N_SHAPES, N_SHAPES + 1, N_SHAPES + 2]
#: the pose's sign in a mirror image: yaw and roll turn the other way, pitch stays
MIRROR_POSE = (-1.0, 1.0, -1.0)


def load_chip(path: Path, size: int) -> torch.Tensor:
    """A chip as uint8 RGB (3, size, size); grey chips are repeated over the channels."""
    image = read_image(path)
    image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB if image.ndim == 2 else cv2.COLOR_BGR2RGB)
    if image.shape[:2] != (size, size):
        shrink = image.shape[0] > size
        image = cv2.resize(image, (size, size),
                           interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


class ChipStore:
    """The chips of a list of files at the training size, decoded once if they fit in memory."""

    def __init__(self, paths: Sequence[Path], size: int, cache_bytes: int, threads: int = 4
                 ) -> None:
        self.paths, self.size = list(paths), size
        self.cached: torch.Tensor | None = None
        if len(self.paths) * 3 * size * size <= cache_bytes:
            self.cached = torch.empty((len(self.paths), 3, size, size), dtype=torch.uint8)
            with ThreadPoolExecutor(max(1, threads)) as pool:  # OpenCV decodes without the GIL
                for i, chip in enumerate(pool.map(lambda p: load_chip(p, size), self.paths)):
                    self.cached[i] = chip

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.cached[i] if self.cached is not None else load_chip(self.paths[i], self.size)


def draw_crop(seed: int, rotate: float = 0.0) -> torch.Tensor:
    """One item's augmentation: (top, left, side, mirror) as fractions of the chip, and the
    turn in radians, uniform in ±`rotate` degrees."""
    rng = np.random.default_rng(seed)
    side = float(np.sqrt(rng.uniform(*CROP_AREA)))
    return torch.tensor([rng.uniform(0, 1 - side), rng.uniform(0, 1 - side), side,
                         float(rng.random() < 0.5), np.radians(rng.uniform(-rotate, rotate))])


def augment(batch: Item) -> Item:
    """Apply each item's `crop` to its `image` (and `mask`, `landmarks`) where the batch is.

    Images come back as float in 0…255 (bilinear; the crop only enlarges, so no aliasing; a
    turn repeats the border into the corners). Landmarks (B, 68, 2) in [0, 1] move with the
    pixels and swap sides when mirrored.
    """
    crop = batch["crop"].float()
    top, left, side, mirror = crop[:, :4].unbind(1)
    turn = crop[:, 4] if crop.shape[1] > 4 else torch.zeros_like(side)
    flip = mirror > 0.5
    cos, sin = turn.cos() * side, turn.sin() * side
    sign = torch.where(flip, -1.0, 1.0)
    # output → input in affine_grid's [-1, 1] coordinates: side · R(turn) · diag(sign, 1), about
    # the crop's centre
    theta = torch.stack([torch.stack([cos * sign, -sin, 2 * left + side - 1], 1),
                         torch.stack([sin * sign, cos, 2 * top + side - 1], 1)], 1)
    out = {k: v for k, v in batch.items() if k != "crop"}
    for key in ("image", "mask"):
        if key in batch:
            out[key] = _warp(batch[key], theta)
    if "expression" in batch:
        out["expression"] = _expression(batch["expression"], flip, turn)
    if "landmarks" in batch:
        inverse = torch.linalg.inv(theta[:, :, :2])
        moved = (2 * batch["landmarks"] - 1 - theta[:, None, :, 2]) @ inverse.transpose(1, 2)
        points = (moved + 1) / 2
        out["landmarks"] = torch.where(flip[:, None, None], points[:, MIRROR68], points)
    return out


def _expression(values: torch.Tensor, flip: torch.Tensor, turn: torch.Tensor) -> torch.Tensor:
    """Blendshapes and pose (B, EXPRESSION) as the augmented face shows them: the roll turned
    with the face (the output turns it anticlockwise by `turn`; roll < 0 is clockwise), then,
    in a mirror image, the sides swapped and yaw and roll negated (checked against the
    backend on augmented chips: tests/test_expression_input.py)."""
    turned = values.clone()
    turned[:, N_SHAPES + 2] += torch.rad2deg(turn).to(values.dtype) / 90.0
    mirrored = turned[:, MIRROR_SHAPES] * torch.tensor(
        [1.0] * N_SHAPES + list(MIRROR_POSE), dtype=values.dtype)
    return torch.where(flip[:, None], mirrored, turned)


def _warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Resample (B, C, H, W) — or clips (B, T, C, H, W), one transform per clip — by theta."""
    lead = x.shape[:-3]
    frames = x.reshape(-1, *x.shape[-3:]).float()
    per_frame = theta.repeat_interleave(frames.shape[0] // theta.shape[0], dim=0)
    grid = F.affine_grid(per_frame, list(frames.shape), align_corners=False)
    out = F.grid_sample(frames, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.reshape(*lead, *out.shape[-3:])


class SeededSampler(Sampler[tuple[int, int]]):
    """Yields (index, seed): the order and every item's augmentation seed depend only on the
    run's seed and the epoch (`set_epoch`), as DistributedSampler's order does. With `weights`
    an epoch draws n items with replacement in proportion to them (a class-balanced epoch:
    each item weighs 1 / its class's count)."""

    def __init__(self, n: int, seed: int, shuffle: bool, weights: np.ndarray | None = None
                 ) -> None:
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float64)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[tuple[int, int]]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        if self.weights is not None:
            order = torch.multinomial(self.weights, self.n, replacement=True, generator=gen)
        elif self.shuffle:
            order = torch.randperm(self.n, generator=gen)
        else:
            order = torch.arange(self.n)
        seeds = torch.randint(0, 2**62, (self.n,), generator=gen)
        return iter(zip(order.tolist(), seeds.tolist(), strict=True))


class FaceDataset(Dataset):
    """One item per row: `image` uint8 (3, S, S), `label`, for training `crop` (see `augment`);
    with `landmarks=True` also
    `landmarks` (68, 2) in [0, 1] and `has_landmarks`; with `expression=True` also
    `expression` (EXPRESSION,) and `has_expression`; with masks, `mask` uint8 (1, m, m) (the
    pseudo mask of the row's class) and `has_mask`; `rotate`: the training turn's range in degrees;
    with `soft=True`, `soft` (C,): the row's
    vote distribution (FER+), which the loss then targets instead of `label`."""

    def __init__(self, inputs: Inputs, rows: pd.DataFrame, size: int, train: bool,
                 landmarks: bool = False, masks: Masks | None = None,
                 cache_bytes: int = 4 << 30, threads: int = 4, soft: bool = False,
                 rotate: float = 0.0, expression: bool = False) -> None:
        self.train, self.masks, self.rotate = train, masks, rotate
        self.expression = torch.from_numpy(inputs.expression[rows.index]) if expression else None
        self.has_expression = torch.tensor(rows["has_expression"].to_numpy(), dtype=torch.bool)
        self.soft = torch.from_numpy(inputs.soft[rows.index]) if soft else None
        self.store = ChipStore([inputs.align_dir / p for p in rows["face_path"]], size,
                               cache_bytes, threads)
        self.targets = torch.tensor(rows["target"].to_numpy(), dtype=torch.int64)
        self.landmarks = torch.from_numpy(inputs.landmarks[rows.index]) if landmarks else None
        self.has_landmarks = torch.tensor(rows["has_landmarks"].to_numpy(), dtype=torch.bool)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, key: tuple[int, int]) -> Item:
        i, seed = key
        target = int(self.targets[i])
        item = {"image": self.store[i], "label": self.targets[i]}
        if self.soft is not None:
            item["soft"] = self.soft[i]
        if self.train:
            item["crop"] = draw_crop(seed, self.rotate)
        if self.landmarks is not None:
            item["landmarks"] = self.landmarks[i]
            item["has_landmarks"] = self.has_landmarks[i]
        if self.expression is not None:
            item["expression"] = self.expression[i]
            item["has_expression"] = self.has_expression[i]
        if self.masks is not None:
            item["mask"] = torch.from_numpy(self.masks.images[target]).unsqueeze(0)
            item["has_mask"] = torch.tensor(bool(self.masks.present[target]))
        return item


class ClipDataset(Dataset):
    """One item per clip — a part's rows of one sequence and one label, in frame order
    (AFEW: a video; CK+: a sequence's peak frames, its neutral frame a clip of its own):
    `image` uint8 (T, 3, S, S), `valid` (T,), `label`. Training draws `frames` frames
    (Emotion-FAN's 3; with repeats when a clip is shorter) and one `crop` for all; testing
    takes every frame."""

    def __init__(self, inputs: Inputs, rows: pd.DataFrame, size: int, train: bool,
                 frames: int = 3, cache_bytes: int = 4 << 30, threads: int = 4,
                 rotate: float = 0.0) -> None:
        self.train, self.frames, self.rotate = train, frames, rotate
        rows = rows.assign(_pos=np.arange(len(rows)))
        self.store = ChipStore([inputs.align_dir / p for p in rows["face_path"]], size,
                               cache_bytes, threads)
        groups = rows.sort_values(["sequence", "label", "frame"]).groupby(
            ["sequence", "label"], sort=True)
        self.clips = [g["_pos"].to_numpy() for _, g in groups]
        self.targets = torch.as_tensor([int(g["target"].iloc[0]) for _, g in groups])

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, key: tuple[int, int]) -> Item:
        i, seed = key
        frames = self.clips[i]
        if self.train:
            rng = np.random.default_rng(seed)
            frames = np.sort(rng.choice(frames, self.frames, replace=len(frames) < self.frames))
        item = {"image": torch.stack([self.store[int(j)] for j in frames]),
                "valid": torch.ones(len(frames), dtype=torch.bool), "label": self.targets[i]}
        if self.train:
            item["crop"] = draw_crop(seed, self.rotate)
        return item


def collate_clips(items: list[Item]) -> Item:
    """Pad clips to the longest in the batch; padding frames are zeros with `valid` False."""
    longest = max(len(item["valid"]) for item in items)
    padded = []
    for item in items:
        missing = longest - len(item["valid"])
        if missing:
            pad = item["image"].new_zeros((missing, *item["image"].shape[1:]))
            item = {**item, "image": torch.cat([item["image"], pad]),
                    "valid": torch.cat([item["valid"], torch.zeros(missing, dtype=torch.bool)])}
        padded.append(item)
    return default_collate(padded)


def seed_worker(_: int) -> None:
    """Seed a loader worker's global generators from its torch seed; one torch thread per worker
    (its OpenCV thread count comes from the parent, see `make_loader`)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
    torch.set_num_threads(1)


def class_weights(targets: torch.Tensor) -> np.ndarray:
    """Each item's weight in a class-balanced epoch: 1 / the count of its class."""
    counts = np.bincount(targets.numpy())
    return 1.0 / counts[targets.numpy()]


def make_loader(dataset: FaceDataset | ClipDataset, batch_size: int, train: bool, seed: int,
                workers: int, pin_memory: bool, balanced: bool = False) -> DataLoader:
    """A DataLoader with a `SeededSampler`, seeded workers and, on CUDA, pinned memory.

    A training batch of one sample is dropped (BatchNorm cannot train on it); test sets are
    whole. `balanced`: training epochs drawn class-balanced (AffectNet's imbalance).
    """
    if workers:
        # OpenCV's thread pool does not survive fork: a forked worker that resizes it deadlocks
        # (pthread_cond_destroy waits on threads the fork left behind). One OpenCV thread, set
        # here in the parent, is what the workers inherit and never change.
        cv2.setNumThreads(1)
    return DataLoader(
        dataset, batch_size=batch_size, sampler=SeededSampler(
            len(dataset), seed, shuffle=train,
            weights=class_weights(dataset.targets) if train and balanced else None),
        num_workers=workers, collate_fn=collate_clips if isinstance(dataset, ClipDataset)
        else default_collate, pin_memory=pin_memory,
        drop_last=train and len(dataset) % batch_size == 1, persistent_workers=workers > 0,
        worker_init_fn=seed_worker, generator=torch.Generator().manual_seed(seed),
    )
