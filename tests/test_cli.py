"""The command line's own behaviour: help, version, unknown commands."""

from click.testing import CliRunner

from daemon1521 import __version__
from daemon1521.cli import main


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_unknown_command_fails():
    result = CliRunner().invoke(main, ["no-such-command"])
    assert result.exit_code != 0
    assert "No such command" in result.output
