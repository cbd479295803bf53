"""Every command's --help works and shows an example; unknown names list the valid ones."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from fer_prep.cli import main
from fer_prep.faces import create_backend


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, cmd in group.commands.items():
        yield (*prefix, name)
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))


@pytest.mark.parametrize("path", [(), *_commands(main)], ids=lambda p: " ".join(p) or "fer-prep")
def test_help_shows_an_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    command = main
    for name in path:
        command = command.commands[name]
    if not isinstance(command, click.Group):
        assert "Example:" in result.output


def test_unknown_backend_lists_the_choices() -> None:
    with pytest.raises(KeyError, match="dlib-hog"):
        create_backend("no-such-backend")


def test_preset_gives_defaults_and_explicit_options_win() -> None:
    from fer_prep.cli import resolve_align
    from fer_prep.stages.align import AlignParams

    assert resolve_align("emotion-fan", backend=None, size=None) == AlignParams(
        backend="emotion-fan", template="dlib-chip5", size=224, padding=0.25, grey=False
    )
    assert resolve_align("emotion-fan", size=112).size == 112
    assert resolve_align("default").backend == "mediapipe"
