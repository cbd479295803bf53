"""Name → object registries, one per kind (backends, templates, adapters, ...), in timm's manner.

A registered thing is chosen by name from the CLI; an unknown name raises an error that lists the
valid ones, and tests parametrize over `names()` so every registered thing gets the same contract.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from fer_prep.errors import OptionError

T = TypeVar("T")


class UnknownName(OptionError, KeyError):
    """A name no registry entry has; the message lists the valid ones."""

    def __str__(self) -> str:
        return str(self.args[0])


class Registry(Generic[T]):
    """A named collection of one kind of thing, filled with the `register` decorator."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the decorated object under `name`."""

        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return add

    def unregister(self, name: str) -> T:
        """Remove and return the entry `name` (a plugin unloading, a test cleaning up)."""
        return self._items.pop(name)

    def add(self, name: str, obj: T) -> T:
        """Register a plain value (a template, a table) under `name`."""
        return self.register(name)(obj)

    def get(self, name: str) -> T:
        """The object registered as `name`; UnknownName (a KeyError) listing the valid ones."""
        try:
            return self._items[name]
        except KeyError:
            valid = ", ".join(self.names())
            raise UnknownName(f"unknown {self.kind} {name!r}; choose one of: {valid}") from None

    def names(self) -> list[str]:
        return sorted(self._items)
