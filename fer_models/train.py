"""The training loop: per fold, train on its training part, test on its test part, checkpoint.

    WORK/<dataset>/train/<run>/          <run>: the model's name (`fmpn-stage1` for FMPN's stage 1)
      metrics.json      classes, the resolved config and protocol, every fold's metrics and
                        confusion matrix, the mean ± std over folds and the pooled accuracy
      results.md        the table the protocol's papers print (fer_models.report)
      confusion.png     every fold's test predictions together
      fold_<K>/last.pt  model, optimizer, scheduler, epoch, RNG state: `--resume` continues here
      fold_<K>/best.pt  the weights of the epoch reported (see `select`)
      fold_<K>/metrics.json, fold_<K>/confusion.png

The protocol (`fer_models.protocols`, the dataset's own by default) says which parts train,
choose the epoch and test, and what is reported. The epoch reported is the last, or the best on
the dataset's validation split (FER2013's PublicTest); `select="test"` takes the best on the
test part, as several seeds do, and every output says so.

CPU runs are deterministic (`torch.use_deterministic_algorithms`), and a run killed after any
epoch and resumed ends with the weights of one never interrupted: batches and augmentation depend
only on (seed, epoch) (`fer_models.data.SeededSampler`), dropout on the RNG state saved with
every epoch. On CUDA: bf16 autocast, channels_last, pinned memory, non-blocking copies; on a
CPU with native bf16 (AVX-512 BF16, AMX) bf16 autocast and channels_last too (`--precision`).
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from fer_models import sharpness
from fer_models.data import ClipDataset, FaceDataset, augment, make_loader
from fer_models.inputs import InputError, Inputs, Masks, masks_order, read_inputs, read_masks
from fer_models.models import create_model, model_class
from fer_models.models.backbone import load_pretrained
from fer_models.models.base import Batch, FERModel
from fer_models.protocols import (
    LOSSES,
    PROTOCOLS,
    SELECT,
    clip_confusion,
    mean_class_accuracy,
    selection,
)
from fer_models.report import confusion_png, results_markdown
from fer_prep.cache import atomic_path, digest, read_record, stat_key, write_text_atomic
from fer_prep.datasets import get_dataset

RUNS = "train"
LAST, BEST, METRICS, CONFUSION = "last.pt", "best.pt", "metrics.json", "confusion.png"
WEIGHT_DECAY = 1e-4
#: options set by the loop itself, not by the user
DERIVED = ("num_classes", "mask_size")
RESULTS = "results.md"


@dataclass(frozen=True)
class Config:
    """Everything a fold's result depends on; saved in metrics.json and every checkpoint.

    Worker count, device, precision and cache size are left out: they change the speed, not
    what the run is (bf16 moves the last digits).
    """

    model: str
    epochs: int
    batch_size: int
    lr: float
    size: int
    seed: int
    pretrained: str | None = None
    weight_decay: float = WEIGHT_DECAY
    options: dict[str, Any] = field(default_factory=dict)
    protocol: str = "kfold"
    select: str = "last"  # the epoch reported: last, validation (its best) or test (its best)
    loss: str = "majority"  # or soft: cross-entropy on the vote distribution (FER+)
    balanced: bool = False  # class-balanced training epochs
    rotate: float = 0.0  # the training augmentation's turn, up to ± this many degrees
    test_blur: float = 0.0  # σ (px) of the Gaussian blur on every face tested (`sharpness`)

    @property
    def run(self) -> str:
        return model_class(self.model).run_name(self.model, self.options)


def resolve_config(model: str, epochs: int | None = None, batch_size: int | None = None,
                   lr: float | None = None, size: int | None = None, seed: int = 0,
                   pretrained: str | Path | None = None, protocol: str = "kfold",
                   select: str = "last", loss: str = "majority", balanced: bool = False,
                   rotate: float = 0.0, test_blur: float = 0.0, **options: Any) -> Config:
    """The model's defaults, every argument given (not None) winning; options checked against
    the model's own parameters."""
    cls = model_class(model)
    options = {k: v for k, v in options.items() if v is not None}
    defaults = cls.defaults_for(options)
    takes = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", *DERIVED)]
    unknown = sorted(set(options) - set(takes))
    if unknown:
        raise InputError(f"{model} takes no option {', '.join(unknown)} (its options: "
                         f"{', '.join(takes) or 'none'})")
    pick = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "size": size}
    values = {k: defaults[k] if v is None else v for k, v in pick.items()}
    return Config(model=model, seed=seed, options=options,
                  pretrained=None if pretrained is None else str(pretrained),
                  protocol=protocol, select=select, loss=loss, balanced=balanced,
                  rotate=rotate, test_blur=test_blur, **values)


def resolve_device(name: str) -> torch.device:
    """`auto`: CUDA when torch sees a GPU, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda, but torch sees no CUDA GPU here (use --device auto)")
    if name not in ("cpu", "cuda"):
        raise InputError(f"unknown device {name!r}; choose auto, cpu or cuda")
    return torch.device(name)


PRECISIONS = ("auto", "bf16", "fp32")


def cpu_has_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (AVX-512 BF16 or AMX), where oneDNN's bf16
    convolutions run 2–3× faster than float32 (bench/train_speed.py); emulated elsewhere."""
    return any(getattr(torch.cpu, name, lambda: False)()
               for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def resolve_precision(name: str, device: torch.device) -> bool:
    """Whether to train and test under bf16 autocast: `auto` on CUDA and on a CPU with native
    bf16; `bf16` anywhere; `fp32` never."""
    if name not in PRECISIONS:
        raise InputError(f"unknown precision {name!r}; choose {', '.join(PRECISIONS)}")
    if name == "auto":
        return device.type == "cuda" or cpu_has_bf16()
    return name == "bf16"


@contextlib.contextmanager
def determinism(device: torch.device) -> Iterator[None]:
    """Deterministic kernels on the CPU (restored afterwards); cuDNN autotuning on CUDA."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        yield
        return
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


@dataclass
class Run:
    """One training run: what it reads, how, and where it writes."""

    config: Config
    inputs: Inputs
    device: torch.device
    bf16: bool  # bf16 autocast (weights and optimizer stay float32)
    folder: Path
    workers: int
    cache_bytes: int
    resume: bool | str  # True, False, or KEEP
    progress: bool
    echo: Callable[[str], None]

    @property
    def cls(self) -> type[FERModel]:
        return model_class(self.config.model)


def train(dataset: str, work: str | Path = "fer-work", model: str = "resnet18",
          fold: int | str = "all", *, epochs: int | None = None, batch_size: int | None = None,
          lr: float | None = None, size: int | None = None, seed: int = 0,
          device: str = "auto", precision: str = "auto",
          pretrained: str | Path | None = None, resume: bool | str = False,
          workers: int | None = None, cache_gb: float = 4.0, progress: bool = True,
          echo: Callable[[str], None] = print, protocol: str | None = None,
          select: str = "auto", loss: str = "majority", balanced: bool = False,
          rotate: float = 0.0, test_blur: float | str = 0.0, **options: Any
          ) -> dict[str, Any]:
    """Train `model` on fold `fold` (or every fold) of `WORK/<dataset>/`; return the metrics.

    `options` go to the model (e.g. `at_type="self"`, `stage=1`, `backbone="resnet34"`); None
    leaves a model's default. `resume`: continue each fold from its last.pt (an error if it
    was made with other settings); `resume="keep"` (recipes) the same, but a fold made with
    other settings is trained afresh instead. Raises InputError (a ValueError) naming the
    missing or bad input and what makes it; KeyError for an unknown model.
    """
    work = Path(work)
    cls = model_class(model)
    inputs = read_inputs(dataset, work, masks_order(work, dataset) if cls.needs_masks else None)
    name = protocol or get_dataset(dataset, work).protocol
    chosen = PROTOCOLS.get(name)
    if select not in SELECT:
        raise InputError(f"--select {select!r}: choose one of {', '.join(SELECT)}")
    has_validation = not inputs.part(0, "validation").empty
    rule = selection(chosen, select, has_validation)
    if rule == "validation" and not has_validation:
        raise InputError(f"--select validation: the {dataset} folds leave no validation split "
                         "(FER2013's PublicTest with `fer-prep folds --scheme official`)")
    if loss == "soft" and (not chosen.soft or inputs.soft is None):
        raise InputError(f"--loss soft needs vote distributions (FER+ prepared by `fer-prep "
                         f"ferplus align`) and the ferplus protocol; {dataset} with protocol "
                         f"{name} has none")
    if loss not in LOSSES:
        raise InputError(f"--loss {loss!r}: choose one of {', '.join(LOSSES)}")
    if not 0 <= rotate <= 45:
        raise InputError(f"--rotate {rotate}: give a turn of 0 to 45 degrees")
    auto = test_blur == "auto"
    config = resolve_config(model, epochs, batch_size, lr, size, seed, pretrained, name, rule,
                            loss, balanced, rotate, 0.0 if auto else float(test_blur), **options)
    if auto:
        config = replace(config, test_blur=_matching_blur(inputs, config.size, echo))
    if cls.needs_expression(config.options) and not inputs.rows["has_expression"].any():
        raise InputError(f"--expression: no face in {inputs.align_dir} has blendshapes and a "
                         f"head pose; align with the mediapipe backend (`fer-prep {dataset} "
                         "align --backend mediapipe`)")
    dev = resolve_device(device)
    if inputs.left_out:
        counts = ", ".join(f"{n} {label}" for label, n in inputs.left_out.items())
        echo(f"note: {counts} rows left out: {model} trains on {', '.join(inputs.classes)}")
    run = Run(config=config, inputs=inputs, device=dev, bf16=resolve_precision(precision, dev),
              folder=work / dataset / RUNS / config.run,
              workers=min(4, os.cpu_count() or 1) if workers is None else workers,
              cache_bytes=int(cache_gb * 2**30), resume=resume, progress=progress, echo=echo)
    with determinism(dev):
        for k in select_folds(inputs, fold, echo, rule == "validation"):
            fit_fold(run, k)
    return collect(run)


def _matching_blur(inputs: Inputs, size: int, echo: Callable[[str], None]) -> float:
    """`--test-blur auto`: the σ that makes the faces tested (fold 0's validation part, else its
    test part) as sharp as its training faces at the input size (`fer_models.sharpness`), said
    in a note."""
    tested = "validation" if not inputs.part(0, "validation").empty else "test"
    paths = {part: [str(inputs.align_dir / p) for p in inputs.part(0, part)["face_path"]]
             for part in ("train", tested)}
    if not all(paths.values()):
        return 0.0
    sigma, seen = sharpness.matching_blur(sharpness.read_sample(paths["train"], size),
                                          sharpness.read_sample(paths[tested], size))
    echo(f"note: --test-blur auto: σ = {sigma:g} px (median variance of the Laplacian: "
         f"training faces {seen['training']:.1f}, {tested} faces {seen['tested']:.1f}, "
         f"blurred {seen['tested_blurred']:.1f})")
    return sigma


def select_folds(inputs: Inputs, fold: int | str, echo: Callable[[str], None],
                 validation: bool = False) -> list[int]:
    """The folds to train: one (checked), or every fold with a test part. With `validation`
    (the epoch chosen on the validation split) a fold without test rows is trained too: a copy
    of FER2013 without PrivateTest still trains and chooses on PublicTest."""
    folds_dir = inputs.work / inputs.dataset / "folds"
    has_test = set(inputs.rows["fold"].unique())
    if validation:
        untested = [k for k in range(inputs.n_folds) if k not in has_test]
        if untested:
            echo(f"note: fold(s) {', '.join(map(str, untested))} have no test rows of "
                 f"{', '.join(inputs.classes)} (FER2013 without PrivateTest): trained, the epoch "
                 "chosen on the validation split, no test accuracy")
        has_test |= set(untested)
    if str(fold) == "all":
        empty = [k for k in range(inputs.n_folds) if k not in has_test]
        if empty:
            echo(f"note: fold(s) {', '.join(map(str, empty))} have no test rows of "
                 f"{', '.join(inputs.classes)}; skipped")
        return [k for k in range(inputs.n_folds) if k in has_test]
    k = int(fold)
    if not 0 <= k < inputs.n_folds:
        raise InputError(f"fold {k} out of range: {folds_dir} holds {inputs.n_folds} fold(s), "
                         f"0…{inputs.n_folds - 1}")
    if k not in has_test:
        raise InputError(f"fold {k} of {folds_dir} has no test rows to evaluate on")
    return [k]


def fit_fold(run: Run, k: int) -> None:
    """Train and test fold `k` (resuming from its last.pt if asked); write its outputs."""
    cfg, inputs, dev = run.config, run.inputs, run.device
    folder = run.folder / f"fold_{k}"
    source = fold_source(run, k)
    ckpt = _resumable(run, folder, source)
    if ckpt is not None and ckpt["epoch"] >= cfg.epochs and (folder / METRICS).is_file():
        run.echo(f"fold {k}: complete in {folder}, kept")
        return
    if ckpt is None and folder.exists():
        shutil.rmtree(folder)  # a fresh start keeps nothing of an earlier run

    loaders, masks = fold_loaders(run, k)
    train_rows, test_rows = inputs.part(k, "train"), inputs.part(k, "test")
    clips = _clip_ids(run, test_rows)
    net, extra = fold_model(run, k, masks, train_rows, fresh=ckpt is None)
    opt = torch.optim.AdamW(net.param_groups(cfg.lr), weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    start, history, chosen = 0, [], None
    if ckpt is not None:
        net.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        start, history, chosen = ckpt["epoch"], ckpt["history"], ckpt["chosen"]
        extra = ckpt["extra"]
        torch.set_rng_state(ckpt["rng"]["torch"])
        if dev.type == "cuda" and ckpt["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(ckpt["rng"]["cuda"])
        run.echo(f"fold {k}: resumed after epoch {start} from {folder / LAST}")

    n = len(inputs.classes)
    for epoch in range(start, cfg.epochs):
        loaders["train"].sampler.set_epoch(epoch)
        fit = train_epoch(net, opt, loaders["train"], dev,
                          f"{cfg.run} fold {k} epoch {epoch + 1}/{cfg.epochs}", run.progress,
                          run.bf16)
        sched.step()
        test = evaluate(net, loaders["test"], dev, n, clips, run.bf16, cfg.test_blur) \
            if len(test_rows) \
            else {"loss": None, "accuracy": None, "mean_class_accuracy": None,
                  "confusion": [[0] * n] * n}
        val = evaluate(net, loaders["validation"], dev, n, bf16=run.bf16, blur=cfg.test_blur) \
            if "validation" in loaders else None
        history.append({"epoch": epoch + 1, **{f"train_{m}": v for m, v in fit.items()},
                        **{f"test_{m}": v for m, v in test.items() if "confusion" not in m},
                        **{f"validation_{m}": v for m, v in (val or {}).items()
                           if "confusion" not in m}})
        score = {"last": float(epoch), "test": _score(test), "validation": _score(val)}[cfg.select]
        if chosen is None or score > chosen["score"]:
            chosen = {"epoch": epoch + 1, "score": score, "test": test,
                      "validation_accuracy": val and val["accuracy"]}
            _save(folder / BEST, {"model": net.state_dict(), "epoch": epoch + 1,
                                  "classes": inputs.classes, "config": asdict(cfg)})
        _save(folder / LAST, {
            "model": net.state_dict(), "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(), "epoch": epoch + 1, "history": history,
            "chosen": chosen, "extra": extra, "classes": inputs.classes, "config": asdict(cfg),
            "source": source,
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state() if dev.type == "cuda" else None},
        })
        run.echo(_epoch_line(k, epoch + 1, cfg.epochs, fit, test, val))
    if chosen is None:  # resumed a finished fold whose metrics were lost
        chosen = {"epoch": cfg.epochs, "score": 0.0, "validation_accuracy": None,
                  "test": evaluate(net, loaders["test"], dev, n, clips, run.bf16,
                                   cfg.test_blur)}
    _write_fold(run, k, folder, chosen, history, extra, {p: len(d.dataset)
                                                         for p, d in loaders.items()})


def fold_loaders(run: Run, k: int) -> tuple[dict[str, Any], Masks | None]:
    """Fold `k`'s loaders by part (train, test, and validation when it chooses the epoch) and
    its masks (for a model that needs them)."""
    cfg, inputs = run.config, run.inputs
    masks = read_masks(inputs, k) if run.cls.needs_masks else None
    parts = ["train", "test"] + (["validation"] if cfg.select == "validation" else [])
    loaders = {part: make_loader(fold_dataset(run, inputs.part(k, part), part == "train", masks),
                                 cfg.batch_size, part == "train", cfg.seed, run.workers,
                                 run.device.type == "cuda", balanced=cfg.balanced)
               for part in parts}
    return loaders, masks


def fold_model(run: Run, k: int, masks: Masks | None, train_rows: Any, fresh: bool
               ) -> tuple[FERModel, dict[str, Any]]:
    """Fold `k`'s model on the run's device; `fresh`: initialised as a new run starts it
    (pretrained weights, the previous step, data statistics), with what that took."""
    cfg = run.config
    options = {**cfg.options, **({"mask_size": masks.size} if masks else {})}
    torch.manual_seed(cfg.seed)
    net = create_model(cfg.model, len(run.inputs.classes), **options)
    extra = _initialise(run, net, k, train_rows) if fresh else {}
    net.to(run.device)
    if run.device.type == "cuda" or run.bf16:
        net.to(memory_format=torch.channels_last)
        net.channels_last = True
    return net, extra


def _clip_ids(run: Run, rows: Any) -> np.ndarray | None:
    """Each test row's clip, when the protocol scores clips and the model sees frames."""
    if not PROTOCOLS.get(run.config.protocol).clips or run.cls.clip:
        return None
    return rows["sequence"].astype(str).to_numpy()


def fold_dataset(run: Run, rows: Any, train: bool, masks: Masks | None
                 ) -> FaceDataset | ClipDataset:
    """The dataset of one part's rows as the run's model reads it."""
    threads = max(1, os.cpu_count() or 1)
    if run.cls.clip:
        return ClipDataset(run.inputs, rows, run.config.size, train,
                           cache_bytes=run.cache_bytes, threads=threads,
                           rotate=run.config.rotate)
    return FaceDataset(run.inputs, rows, run.config.size, train,
                       landmarks=run.cls.needs_landmarks, masks=masks,
                       expression=run.cls.needs_expression(run.config.options),
                       cache_bytes=run.cache_bytes, threads=threads,
                       soft=train and run.config.loss == "soft", rotate=run.config.rotate)


KEEP = "keep"  # resume mode: keep what these settings made, train the rest afresh


def fold_source(run: Run, k: int) -> str:
    """What fold `k`'s result depends on beside its config: the faces and folds it reads, the
    masks (FMPN), and the files of the weights it starts from (size and mtime)."""
    cfg = run.config
    parts: list[Any] = [run.inputs.key]
    if run.cls.needs_masks:
        masks = read_record(run.inputs.work / run.inputs.dataset / "masks") or {}
        parts.append(masks.get("output_fingerprint"))
    starts = [Path(cfg.pretrained)] if cfg.pretrained else []
    step = run.cls.previous_step(cfg.model, cfg.options)
    if step is not None:
        starts.append(run.folder.parent / step[0] / f"fold_{k}" / LAST)
    parts += [stat_key(p)[:2] if p.is_file() else None for p in starts]
    return digest(parts)


def _resumable(run: Run, folder: Path, source: str) -> dict[str, Any] | None:
    """The fold's last.pt when resuming and it exists; an error if it was another config's;
    None (a fresh start, said) if it was trained on other inputs than `source`."""
    path = folder / LAST
    if not run.resume or not path.is_file():
        return None
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(ckpt, dict) or "model" not in ckpt:
            raise ValueError("no model in it")
    except Exception as exc:  # torch's reader fails in many types (truncated, not a zip, …)
        why = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        if run.resume == KEEP:
            run.echo(f"fold {folder.name[5:]}: {path} is not a whole checkpoint ({why}); "
                     "training it afresh")
            return None
        raise InputError(f"{path}: not a whole checkpoint ({why}); drop --resume to train "
                         f"fold {folder.name[5:]} afresh (it replaces the file)") from None
    theirs = {**ckpt.get("config", {}), "classes": ckpt.get("classes")}
    ours = {**asdict(run.config), "classes": run.inputs.classes}
    differ = [f"{k} {theirs.get(k)!r} (now {v!r})" for k, v in ours.items() if theirs.get(k) != v]
    if differ and run.resume == KEEP:
        run.echo(f"fold {folder.name[5:]}: {path} was made with {', '.join(differ)}; training "
                 "it afresh")
        return None
    if differ:
        raise InputError(f"{path}: made with {', '.join(differ)}; resume with the same settings, "
                         "or drop --resume to start over")
    if ckpt.get("source") != source:
        run.echo(f"fold {folder.name[5:]}: {path} was trained on other faces, folds, masks or "
                 "starting weights; training it afresh")
        return None
    return ckpt


def _initialise(run: Run, net: FERModel, k: int, train_rows: Any) -> dict[str, Any]:
    """A fresh model's starting point: pretrained weights, stage-1 generator, data statistics."""
    extra: dict[str, Any] = {}
    cfg = run.config
    if cfg.pretrained:
        own = inspect.signature(run.cls.__init__).parameters.get("backbone")
        backbone = cfg.options.get("backbone") or (own.default if own else "resnet18")
        try:
            extra["pretrained"] = load_pretrained(net, cfg.pretrained, backbone)
        except FileNotFoundError as exc:
            raise InputError(str(exc)) from None
        run.echo(f"fold {k}: {extra['pretrained']['loaded']} tensors from "
                 f"{extra['pretrained']['path']}")
    step = run.cls.previous_step(cfg.model, cfg.options)
    if step is not None:
        extra["previous_step"] = _previous_step(run, net, k, *step)
    if hasattr(net, "init_class_weights"):  # a seed that weights its loss by class (MAFER)
        net.init_class_weights(torch.tensor(train_rows["target"].to_numpy()))
    if run.cls.needs_landmarks:
        has = train_rows["has_landmarks"].to_numpy()
        net.init_from_data(torch.from_numpy(run.inputs.landmarks[train_rows.index[has]]))
    return extra


def _previous_step(run: Run, net: FERModel, k: int, name: str, command: str) -> str | None:
    """The previous step's weights of the same fold, if trained (its last.pt: no test-set
    selection), as the model takes them."""
    path = run.folder.parent / name / f"fold_{k}" / LAST
    if not path.is_file():
        if run.cls.previous_required:
            raise InputError(f"{path}: no {name} weights to start from; `{command}` trains "
                             "that step first")
        run.echo(f"fold {k}: no {name} weights at {path}; starting without them (`{command}` "
                 "trains that step first)")
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)["model"]
    try:
        took = net.load_previous(state)
    except RuntimeError as exc:
        raise InputError(f"{path}: its weights do not fit this model ({exc}); train {name} with "
                         "the same options") from None
    run.echo(f"fold {k}: {took} from {path}")
    return str(path)


def _to(batch: Batch, dev: torch.device) -> Batch:
    return {k: v.to(dev, non_blocking=True) for k, v in batch.items()}


def _autocast(dev: torch.device, bf16: bool) -> torch.autocast:
    return torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=bf16)


def _images(batch: Batch) -> int:
    """Faces in a batch (frames, for clips)."""
    return batch["image"].shape[:-3].numel()


def train_epoch(net: FERModel, opt: torch.optim.Optimizer, loader: Any, dev: torch.device,
                desc: str, progress: bool, bf16: bool) -> dict[str, float]:
    """One pass over the training part; a progress bar with loss, accuracy and images/s."""
    net.train()
    sums: dict[str, torch.Tensor] = {}
    correct = torch.zeros((), device=dev)
    seen = images = 0
    start = time.perf_counter()
    bar = tqdm(loader, desc=desc, unit="batch", leave=False, disable=not progress,
               dynamic_ncols=True)
    for step, batch in enumerate(bar, 1):
        batch = _to(batch, dev)
        if "crop" in batch:
            batch = augment(batch)
        with _autocast(dev, bf16):
            out = net(batch)
            parts = net.loss(out, batch)
        opt.zero_grad(set_to_none=True)
        parts["loss"].backward()
        opt.step()
        n = len(batch["label"])
        seen, images = seen + n, images + _images(batch)
        for name, value in parts.items():  # summed on the device: no sync per step
            sums[name] = sums.get(name, 0) + value.detach().float() * n
        if "logits" in out:
            correct += (out["logits"].argmax(1) == batch["label"]).sum()
        if progress and (step % 10 == 0 or step == len(loader)):
            bar.set_postfix(loss=f"{float(sums['loss']) / seen:.3f}",
                            acc=f"{100 * float(correct) / seen:.1f}%",
                            img_s=f"{images / (time.perf_counter() - start):.0f}")
    result = {name: float(total) / max(seen, 1) for name, total in sums.items()}
    result["accuracy"] = float(correct) / max(seen, 1) if "ce" in sums else None
    result["images_per_s"] = images / (time.perf_counter() - start)
    return result


@torch.no_grad()
def evaluate(net: FERModel, loader: Any, dev: torch.device, n_classes: int,
             clips: np.ndarray | None = None, bf16: bool = False, blur: float = 0.0
             ) -> dict[str, Any]:
    """Loss, accuracy, mean class accuracy and confusion matrix (rows: true, columns:
    predicted) on a part; with `clips` (each item's clip) also the clip accuracy and confusion,
    a clip's prediction the argmax of its frames' mean probabilities. The loader keeps the
    rows' order (test parts are not shuffled), which `clips` follows."""
    net.eval()
    sums: dict[str, float] = {}
    confusion = np.zeros((n_classes, n_classes), np.int64)
    probs, targets = [], []
    seen = 0
    for batch in loader:
        batch = _to(batch, dev)
        if blur:
            batch["image"] = sharpness.blur(batch["image"], blur)
        with _autocast(dev, bf16):
            out = net(batch)
            parts = net.loss(out, batch)
        n = len(batch["label"])
        seen += n
        for name, value in parts.items():
            sums[name] = sums.get(name, 0.0) + float(value) * n
        if "logits" in out:
            pred = out["logits"].argmax(1).cpu().numpy()
            np.add.at(confusion, (batch["label"].cpu().numpy(), pred), 1)
            if clips is not None:
                probs.append(out["logits"].float().softmax(1).cpu().numpy())
                targets.append(batch["label"].cpu().numpy())
    result: dict[str, Any] = {name: total / max(seen, 1) for name, total in sums.items()}
    scored = confusion.sum() > 0
    result["accuracy"] = float(np.trace(confusion) / confusion.sum()) if scored else None
    result["mean_class_accuracy"] = mean_class_accuracy(confusion) if scored else None
    result["confusion"] = confusion.tolist()
    if clips is not None and probs:
        by_clip = clip_confusion(np.concatenate(probs), np.concatenate(targets), clips,
                                 n_classes)
        result["clip_accuracy"] = float(np.trace(by_clip) / by_clip.sum())
        result["clip_confusion"] = by_clip.tolist()
    return result


def _score(result: dict[str, Any] | None) -> float:
    """Higher is better: accuracy, or minus the mask MSE for FMPN's generator stage; -inf for
    a part not there (no test rows)."""
    if result is None or (result["accuracy"] is None and "mse" not in result):
        return float("-inf")
    return result["accuracy"] if result["accuracy"] is not None else -result["mse"]


def _save(path: Path, obj: dict[str, Any]) -> None:
    """A checkpoint, atomically. Serialised in memory first: torch's own file writer reports a
    full disk as a bare RuntimeError, a plain write as the OSError that `atomic_path` makes one
    line of (and the last checkpoint stays as it was)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())


def _epoch_line(k: int, epoch: int, epochs: int, fit: dict[str, Any], test: dict[str, Any],
                val: dict[str, Any] | None = None) -> str:
    def acc(value: float | None) -> str:
        return "" if value is None else f" acc {100 * value:.1f}%"

    validation = "" if val is None else f" | validation loss {val['loss']:.4f}" \
        f"{acc(val['accuracy'])}"
    tested = "no test rows" if test["loss"] is None else \
        f"loss {test['loss']:.4f}{acc(test['accuracy'])}"
    return (f"fold {k} epoch {epoch}/{epochs}: train loss {fit['loss']:.4f}"
            f"{acc(fit['accuracy'])}, {fit['images_per_s']:.0f} images/s{validation} | test "
            f"{tested}")


def _write_fold(run: Run, k: int, folder: Path, chosen: dict[str, Any], history: list,
                extra: dict, sizes: dict[str, int]) -> None:
    """The fold's metrics.json and confusion.png: the test part at the chosen epoch."""
    inputs, test = run.inputs, chosen["test"]
    metrics = {
        "fold": k, "n_train": sizes["train"], "n_test": sizes["test"],
        "n_validation": sizes.get("validation"), "epochs": run.config.epochs,
        "selected_by": run.config.select, "selected_epoch": chosen["epoch"],
        "validation_accuracy": chosen["validation_accuracy"],
        "accuracy": test["accuracy"], "mean_class_accuracy": test.get("mean_class_accuracy"),
        "clip_accuracy": test.get("clip_accuracy", test["accuracy"] if run.cls.clip else None),
        "test_loss": test["loss"], "test_mse": test.get("mse"),
        "confusion": test["confusion"], "clip_confusion": test.get("clip_confusion"),
        "history": history, **extra, "classes": inputs.classes, "config": asdict(run.config),
    }
    write_text_atomic(folder / METRICS, json.dumps(metrics, indent=2) + "\n")
    if test["accuracy"] is not None:
        confusion_png(folder / CONFUSION, np.array(test["confusion"]), inputs.classes,
                      f"{run.config.run} {inputs.dataset} fold {k}: "
                      f"{100 * test['accuracy']:.1f}% of {sizes['test']}")


def collect(run: Run) -> dict[str, Any]:
    """metrics.json over every fold trained with this config (this run's and earlier ones')."""
    inputs, cfg = run.inputs, run.config
    folds: dict[str, Any] = {}
    for k in range(inputs.n_folds):
        path = run.folder / f"fold_{k}" / METRICS
        if not path.is_file():
            continue
        fold = json.loads(path.read_text())
        if fold.pop("config") != asdict(cfg) or fold.pop("classes") != inputs.classes:
            run.echo(f"note: {path} was trained with other settings; not in metrics.json")
            continue
        folds[str(k)] = fold
    accuracies = [f["accuracy"] for f in folds.values() if f["accuracy"] is not None]
    n = len(inputs.classes)
    confusion = sum((np.array(f["confusion"]) for f in folds.values()),
                    np.zeros((n, n), np.int64))
    protocol = PROTOCOLS.get(cfg.protocol)
    summary = {}
    for metric in protocol.metrics:
        values = [f[metric] for f in folds.values() if f.get(metric) is not None]
        summary[metric] = {"mean": float(np.mean(values)) if values else None,
                           "std": float(np.std(values)) if values else None}
    metrics = {
        "dataset": inputs.dataset, "model": cfg.model, "run": cfg.run,
        "unit": "clip" if run.cls.clip else "frame", "classes": inputs.classes,
        "n_folds": inputs.n_folds, "folds_params": inputs.folds_params,
        "protocol": cfg.protocol, "selected_by": cfg.select, "metrics": summary,
        "left_out": inputs.left_out, "config": asdict(cfg), "device": run.device.type,
        "precision": "bf16" if run.bf16 else "fp32",
        "mean_accuracy": float(np.mean(accuracies)) if accuracies else None,
        "std_accuracy": float(np.std(accuracies)) if accuracies else None,
        "overall_accuracy": float(np.trace(confusion) / confusion.sum()) if accuracies else None,
        "confusion": confusion.tolist(), "folds": folds,
    }
    if run.cls.needs_masks:
        metrics["mask_index"] = {c: masks_order(inputs.work, inputs.dataset).index(c)
                                 for c in inputs.classes}
    text = json.dumps(metrics, indent=2) + "\n"
    if (run.folder / METRICS).is_file() and (run.folder / METRICS).read_text() == text:
        return metrics  # every fold kept: nothing to write
    write_text_atomic(run.folder / METRICS, text)
    write_text_atomic(run.folder / RESULTS, results_markdown(metrics))
    if accuracies:
        confusion_png(run.folder / CONFUSION, confusion, inputs.classes,
                      f"{cfg.run} {inputs.dataset}, {len(folds)} fold(s): "
                      f"{100 * metrics['overall_accuracy']:.1f}% of {int(confusion.sum())}")
    return metrics
