"""The commands as the CLI reference (cli.md) documents them.

`fer-prep`'s root group makes its dataset groups (`fer-prep ckplus`, …) and the cross-dataset
stage commands (`folds`, `masks`) from the registries, in `list_commands`/`get_command`.
sphinx-click asks a group for those only when it has no commands of its own, and the root has
some (`export`, `report`, …), so it would list those alone. `fer_prep` here is the same group
with every command `fer-prep --help` lists resolved into its `commands`; the dataset groups
below it have none of their own, so sphinx-click resolves their stages itself.
"""

from __future__ import annotations

import copy

import click

from fer_models.cli import main as fer_train
from fer_prep.cli import main as _main


def resolved(group: click.Group, name: str) -> click.Group:
    """A copy of `group` whose `commands` holds every command it lists."""
    ctx = click.Context(group, info_name=name)
    whole = copy.copy(group)
    whole.commands = {n: group.get_command(ctx, n) for n in group.list_commands(ctx)}
    return whole


fer_prep = resolved(_main, "fer-prep")

__all__ = ["fer_prep", "fer_train"]
