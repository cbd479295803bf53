"""Datasets by name: each reads one public FER dataset in its original published layout.

A dataset is one module here with one `Dataset` subclass, registered with `@DATASETS.register`.
It knows everything about its dataset and nothing about faces: how to read the layout into items
(one plain dict per source file: a frame, an image, a video), its label codes, the class orders
its seed papers use, its official split, which stages apply to it (by `kind`), where its items go
inside a stage folder (`item_path`), and how to write a tiny embedded sample of itself. Stages and
the CLI ask the dataset object; no stage imports a dataset module. Readers use the standard
library only, so listing a dataset or checking a finished stage stays cheap.

A module here is all a dataset takes: the registry imports every module of this package.
An item has at least `sample_id` (unique), `dataset`, `subject`, `sequence`, `source_path`
(absolute), `status` ("ok" or why the dataset cannot use it) and `message` (the problem in words,
naming the file); a video's `sample_id` is its `sequence` (its frames' rows carry it there).
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

from fer_prep.errors import InputError
from fer_prep.labels import CANONICAL
from fer_prep.registry import Registry

KINDS = ("stills", "sequences", "videos")
TOO_SHORT = "too_short"  # the status of a clip with fewer frames than its selection needs


class ClipTooShort(ValueError):
    """A clip has fewer frames than the dataset's frame selection needs (a 1-frame MMI video):
    the stages make it one `too_short` row, kept out of the folds."""


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """A dataset whose reader takes no options."""


class Dataset:
    """One dataset's facts and its reader; subclass it in a module of its own."""

    name: ClassVar[str]
    title: ClassVar[str]  # one line for `fer-prep --help` and `fer-prep list`
    kind: ClassVar[str]  # stills | sequences | videos: which stages apply
    root_help: ClassVar[str]  # what --root must hold
    codes: ClassVar[dict[int, str]]  # the dataset's own label code → canonical label
    #: a seed paper or use → the classes in its order (masks and exports index by it)
    class_orders: ClassVar[dict[str, tuple[str, ...]]] = {}
    official_test: ClassVar[str | None] = None  # the split an official protocol tests on
    official_train: ClassVar[tuple[str, ...]] = ("train", "training")
    #: the split its protocol chooses the epoch on (FER2013's PublicTest), left out of the folds
    official_validation: ClassVar[str | None] = None
    #: how its papers train and report (`fer_models.protocols`): k folds by default
    protocol: ClassVar[str] = "kfold"
    default_scheme: ClassVar[str] = "subject-kfold"  # `fer-prep folds` without --scheme
    #: stage parameters this dataset takes by default (over the default preset; an explicit
    #: --preset or option wins), by preset table: {"align": {"backend": "given", …}}
    defaults: ClassVar[dict[str, dict[str, Any]]] = {}
    Options: ClassVar[type] = NoOptions  # frozen dataclass of the reader's options
    #: manifest columns this dataset adds beyond the shipped schemas → their meaning
    extra_columns: ClassVar[dict[str, str]] = {}
    integers: ClassVar[tuple[str, ...]] = ()  # item columns holding whole numbers
    internal: ClassVar[tuple[str, ...]] = ()  # item columns the workers need, not the manifest
    #: item statuses its protocol expects (FER+'s dropped votes): counted, not warned about
    quiet: ClassVar[frozenset[str]] = frozenset()

    def scheme_for(self, read: dict[str, Any]) -> str:
        """`fer-prep folds`' scheme without --scheme, for rows read with reader options `read`
        (the align record's): a scheme the rows allow."""
        return self.default_scheme

    def read(self, root: Path, options: Any) -> list[dict[str, Any]]:
        """One item per source file; InputError when `root` is not this dataset."""
        raise NotImplementedError

    def read_labels(self, root: Path) -> list[dict[str, Any]] | None:
        """The items `read` gives, from the label files alone (no images), where the layout
        allows it (folds without faces); None where it does not."""
        return None

    def load_image(self, item: dict[str, Any]) -> Any:
        """The pixels of a still item (8-bit grey or BGR), in a worker: its file by default; a
        dataset that keeps images in a table (FER2013's CSV rows) decodes them here.
        `fer_prep.images.UnreadableImage` when they cannot be read."""
        from fer_prep.images import read_image

        return read_image(item["source_path"])

    def item_path(self, item: dict[str, Any]) -> str:
        """Where `item` goes inside a stage folder, without suffix (a folder, for a video)."""
        raise NotImplementedError

    def frame_selection(self, item: dict[str, Any]) -> Callable[[int], dict[int, str]] | None:
        """How this dataset's protocol picks frames from a video item: a function from the
        clip's number of decoded frames to the kept frames (1-based) and their roles (neutral,
        onset, peak); None keeps every frame without a role (AFEW: Emotion-FAN trains on whole
        clips). The function raises ClipTooShort for a clip it cannot select from. Called in
        workers."""
        return None

    def frame_label(self, clip: dict[str, Any], role: str | None) -> dict[str, Any]:
        """The label fields that differ from its clip's for a frame with `role`: a labelled
        clip's neutral frame (the face before the expression starts) is `neutral`."""
        if role != "neutral" or clip.get("label") is None:
            return {}
        code = next((c for c, name in self.codes.items() if name == "neutral"), None)
        return {"label": "neutral", "label_code": code}

    def frame_id(self, clip: str, number: int) -> str:
        """The sample_id of frame `number` of the clip `clip` (videos)."""
        return f"{clip}_{number:07d}"

    def write_sample(self, out: Path) -> Path:
        """Write a tiny embedded sample in the original layout under `out`; return its root."""
        raise NotImplementedError

    def label(self, code: int) -> str:
        """The canonical label of the dataset's `code`; ValueError naming the valid codes."""
        if code not in self.codes:
            raise ValueError(f"{self.name} has no label code {code}; valid codes: "
                             f"{sorted(self.codes)}")
        return self.codes[code]

    def class_order(self, use: str, labels: Iterable[str] = ()) -> tuple[str, ...]:
        """The classes in `use`'s order (a seed's), else the canonical order of the expression
        labels present in `labels` (neutral left out)."""
        if use in self.class_orders:
            return self.class_orders[use]
        present = set(labels)
        return tuple(c for c in CANONICAL if c != "neutral" and c in present)

    def named(self, options: Any) -> Dataset:
        """The dataset under the name its options give it (class folders' `--name`): a copy
        whose `name` keys its work folder; itself by default."""
        return self

    def options(self, **given: Any) -> Any:
        """The reader's options from keyword values (None takes the default)."""
        return self.Options(**{k: v for k, v in given.items() if v is not None})


DATASETS: Registry[type[Dataset]] = Registry("dataset")


@cache
def _load_builtin() -> None:
    """Import every module of this package once: each registers its dataset."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


ALIAS = "dataset.json"  # WORK/<name>/dataset.json: the dataset a renamed tree is, and its options


def get_dataset(name: str, work: Path | str | None = None) -> Dataset:
    """The dataset registered as `name`, or one renamed (`--name`) whose first stage ran in
    `work`; UnknownName listing the registered ones otherwise."""
    _load_builtin()
    alias = Path(work).expanduser() / name / ALIAS if work is not None else None
    if name not in DATASETS.names() and alias is not None and alias.is_file():
        import json

        saved = json.loads(alias.read_text(encoding="utf-8"))
        dataset = DATASETS.get(saved["dataset"])()
        return dataset.named(dataset.options(**saved["options"]))
    return DATASETS.get(name)()


def list_datasets() -> list[str]:
    _load_builtin()
    return DATASETS.names()


def find_folder(root: Path, name: str, depth: int = 3) -> Path | None:
    """`root/…/name` at most `depth` levels down (nested zip extractions), shallowest first,
    in any letter case."""
    for level in range(depth + 1):
        hits = sorted(p for p in root.glob("/".join(["*"] * level + ["*"]))
                      if p.name.lower() == name.lower() and p.is_dir())
        if hits:
            return hits[0]
    return None


def find_file(root: Path, name: str, depth: int = 2) -> Path | None:
    """The file `root/…/name` at most `depth` levels down, shallowest first."""
    for level in range(depth + 1):
        hits = sorted(p for p in Path(root).glob("*/" * level + name) if p.is_file())
        if hits:
            return hits[0]
    return None


def check_root(root: Path | str | None, dataset: str) -> Path:
    """`root` as an existing folder; InputError naming it otherwise."""
    if root is None:
        raise InputError(f"{dataset}: give the dataset folder with --root")
    path = Path(root).expanduser()
    if not path.is_dir():
        what = "a file" if path.exists() else "missing"
        raise InputError(f"{path}: the {dataset} root is {what}; --root takes its folder")
    return path.absolute()
