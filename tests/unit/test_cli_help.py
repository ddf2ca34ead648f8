"""Every `spe` command answers --help (rich markup in a help text must not crash it)."""

import typer.main
from typer.testing import CliRunner

from lnds_spe.cli import app


def command_paths(command, path=()):
    """Every command and group of the click tree, as argument paths."""
    yield path
    for name, child in getattr(command, "commands", {}).items():
        yield from command_paths(child, (*path, name))


def test_every_command_answers_help():
    root = typer.main.get_command(app)
    paths = list(command_paths(root))
    assert len(paths) > 20
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output[-500:], result.exception)
        assert "Usage" in result.output, path
