"""Typed parameters: frozen dataclasses for every stage and dataset reader, and the presets.

A field made with `option(...)` carries what the CLI needs to offer it (help, choices, range), so
the commands are generated from the dataclasses and the Python API takes the same names. Presets
are the TOML recipes in `pipelines/` (installed as `fer_prep/pipelines`), one table per stage
(`[align]`, and `[video-align]` over it for clips): their values are defaults, and every value
given explicitly wins (timm's `resolve_data_config` rule). Presets resolve here, in the library,
so the API and the CLI make the same bytes.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

from fer_prep.errors import OptionError
from fer_prep.shipped import PIPELINES


def option(default: Any, help: str, choices: Sequence[str] | Callable[[], Sequence[str]] | None
           = None, low: float | None = None, high: float | None = None) -> Any:
    """A dataclass field with its CLI help, choices (a list, or a function giving the names of
    a registry) and inclusive range."""
    return dataclasses.field(default=default, metadata={
        "help": help, "choices": choices, "low": low, "high": high})


def field_type(cls: type, name: str) -> type:
    """The plain type of field `name` of dataclass `cls` (`int | None` → int)."""
    hint = typing.get_type_hints(cls)[name]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def choices_of(meta: dict[str, Any]) -> list[str] | None:
    found = meta.get("choices")
    return list(found()) if callable(found) else (list(found) if found else None)


#: what a value of each plain field type may be (a recipe's TOML or --set gives any type)
KINDS = {bool: ("true or false", (bool,)), int: ("a whole number", (int,)),
         float: ("a number", (int, float)), str: ("text", (str,))}


def _wrong_type(cls: type, name: str, value: Any) -> str | None:
    """What `value` should be where field `name` of `cls` has one plain type and it is not."""
    hint = typing.get_type_hints(cls)[name]
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    args = [a for a in typing.get_args(hint) if a is not type(None)] if union else [hint]
    if len(args) != 1 or args[0] not in KINDS:
        return None
    what, kinds = KINDS[args[0]]
    fits = isinstance(value, kinds) and (args[0] is bool or not isinstance(value, bool))
    return None if fits else what


def check_fields(obj: Any) -> None:
    """OptionError for a value of another type, or outside its field's choices or range,
    naming the option."""
    for f in dataclasses.fields(obj):
        value, meta = getattr(obj, f.name), f.metadata
        if value is None:
            continue
        flag = "--" + f.name.replace("_", "-")
        if (what := _wrong_type(type(obj), f.name, value)) is not None:
            raise OptionError(f"{flag} {value!r} is not {what}")
        if not meta:
            continue
        choices = choices_of(meta)
        if choices is not None and value not in choices:
            raise OptionError(f"{flag} {value!r} is not one of: {', '.join(choices)}")
        low, high = meta.get("low"), meta.get("high")
        if (low is not None and value < low) or (high is not None and value > high):
            span = f"{low if low is not None else '-inf'}…{high if high is not None else 'inf'}"
            raise OptionError(f"{flag} {value} is out of range {span}")


def list_presets() -> list[str]:
    return sorted(p.stem for p in PIPELINES.glob("*.toml"))


def load_preset(preset: str | Path, _within: tuple[str, ...] = ()) -> tuple[str, dict[str, Any]]:
    """(name, tables) of a shipped preset by name, or of a user's TOML file by path.

    A top-level `preset = "NAME"` inherits that preset's tables (a recipe's align from a paper's
    preset): each of its tables under the file's own, whose keys win."""
    path = Path(preset).expanduser()
    if path.suffix != ".toml":
        if str(preset) not in list_presets():
            raise OptionError(f"unknown preset {preset!r}; choose one of: "
                              f"{', '.join(list_presets())}, or give a .toml file")
        path = PIPELINES / f"{preset}.toml"
    try:
        tables = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise OptionError(f"{path}: cannot read the preset ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise OptionError(f"{path}: not a TOML preset ({exc})") from None
    base = tables.pop("preset", None)
    if base is not None:
        if not isinstance(base, str) or base in (*_within, str(preset)):
            raise OptionError(f"{path}: preset = {base!r} is not another preset's name")
        _, inherited = load_preset(base, (*_within, str(preset)))
        for name, table in inherited.items():
            if isinstance(table, dict):
                own = tables.get(name, {})
                tables[name] = {**table, **own} if isinstance(own, dict) else own
    return str(preset), tables


@dataclasses.dataclass(frozen=True)
class Params:
    """Base of every stage's parameters: presets, checks, and what goes into the record."""

    #: the preset tables that give this stage its defaults, later ones winning
    preset_tables: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def resolve(cls, preset: str | Path | None = None,
                dataset: dict[str, dict[str, Any]] | None = None, **given: Any) -> Self:
        """The preset's values, every value given (not None) winning; OptionError for an
        unknown key or a value out of range. Without a preset: the `default` preset's values,
        then `dataset`'s (a dataset's own defaults by table, e.g. FER2013's whole-image box)."""
        names = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        if cls.preset_tables:
            label, tables = load_preset(preset or "default")
            if preset is None and dataset:
                tables = {t: {**tables.get(t, {}), **dataset.get(t, {})}
                          for t in cls.preset_tables}
            for table in cls.preset_tables:
                for key, value in tables.get(table, {}).items():
                    if key not in names:
                        raise OptionError(f"preset {label}: [{table}] {key} is not an option "
                                          f"(options: {', '.join(sorted(names))})")
                    values[key] = value
        unknown = sorted(set(given) - names)
        if unknown:
            raise OptionError(f"{unknown[0]} is not an option of this stage (options: "
                              f"{', '.join(sorted(names))})")
        values.update({k: v for k, v in given.items() if v is not None})
        obj = cls(**values)
        check_fields(obj)
        return obj.resolved()

    def resolved(self) -> Self:
        """The parameters with their defaults filled in, as the record states them."""
        return self

    def record(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
