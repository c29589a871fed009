"""Issue 9, item 8: ``config check`` passed files that ``run`` then refused.

A control group that does not exist, a socket path longer than a Unix socket
can have, a NUL byte in a port, one device under two spellings, a firmware
profile directory with no profiles, a TOML array nested 100,000 deep: each
is now one line naming the file, the key and the problem, from ``config
check`` and from ``run`` alike (exit code 2, nothing started, no
traceback). A port that is not there is a warning only: USB modems come
and go.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from daemon1521.cli import main
from daemon1521.config import ConfigError, load_config

MAX_SOCKET_PATH = 107
"""Bytes of a Unix socket path: ``sun_path`` is 108 with the closing NUL."""
LINE = '[lines.l1]\nport = "/dev/ttyS0"\n'

Case = tuple[str, Callable[[Path], str], str, str]
CASES: list[Case] = [
    (
        "group",
        lambda tmp: f'[control]\ngroup = "no-such-group-1521"\n{LINE}',
        "control.group",
        "no group named 'no-such-group-1521'",
    ),
    (
        "socket",
        lambda tmp: f'[control]\nsocket = "/run/{"s" * 120}.sock"\n{LINE}',
        "control.socket",
        f"is 130 bytes long; a Unix socket path may have at most {MAX_SOCKET_PATH}",
    ),
    (
        "nul",
        lambda tmp: '[lines.l1]\nport = "/dev/tty\\u0000S0"\n',
        "lines.l1.port",
        "'/dev/tty\\x00S0' is not a port",
    ),
    (
        "same-device",
        lambda tmp: f'{LINE}[lines.l2]\nport = "/dev/../dev/ttyS0"\n',
        "lines.l2.port",
        "/dev/../dev/ttyS0 is already the port of lines.l1",
    ),
    (
        "no-profiles",
        lambda tmp: f'[daemon]\nfirmware_profiles = "{_empty(tmp)}"\n{LINE}',
        "daemon.firmware_profiles",
        "no firmware profiles (*.toml) in",
    ),
    (
        "deep",
        lambda tmp: "x = " + "[" * 100_000 + "]" * 100_000 + "\n" + LINE,
        "",
        "nested too deeply",
    ),
]


def _empty(tmp: Path) -> Path:
    directory = tmp / "profiles"
    directory.mkdir(exist_ok=True)
    return directory


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "daemon1521.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("name", "text", "key", "problem"), CASES, ids=[c[0] for c in CASES])
def test_config_check_refuses_what_run_would(
    tmp_path: Path, name: str, text: Callable[[Path], str], key: str, problem: str
) -> None:
    path = write(tmp_path, text(tmp_path))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.key == key
    assert problem in caught.value.problem
    where = f"{path}: {key}: " if key else f"{path}: "
    runner = CliRunner()
    for command, prefix in ((["config", "check"], "config check"), (["run", "--config"], "run")):
        result = runner.invoke(main, [*command, str(path)])
        assert result.exit_code == 2, result.output
        assert result.output.startswith(f"daemon1521 {prefix}: {where}"), result.output
        assert problem in result.output
        assert result.output.count("\n") == 1, result.output
        assert "Traceback" not in result.output


def test_a_port_not_there_now_is_a_warning_not_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "ttyUSB9"
    path = write(tmp_path, f'[lines.l1]\nport = "{missing}"\n')
    result = CliRunner().invoke(main, ["config", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert f"{path}: OK" in result.stdout
    assert result.stderr == (
        f"daemon1521 config check: warning: {path}: lines.l1.port: {missing} does not exist "
        "now; the line waits for it to appear\n"
    )


def test_two_spellings_of_a_present_device_are_one_device(tmp_path: Path) -> None:
    device = tmp_path / "ttyACM0"
    device.touch()
    alias = tmp_path / "by-id"
    alias.symlink_to(device)
    path = write(tmp_path, f'[lines.a]\nport = "{device}"\n[lines.b]\nport = "{alias}"\n')
    with pytest.raises(ConfigError, match=r"lines\.b\.port: .* is already the port of lines\.a"):
        load_config(path)


def test_a_socket_path_at_the_limit_is_fine(tmp_path: Path) -> None:
    socket = "/run/" + "s" * (MAX_SOCKET_PATH - len("/run/"))
    config = load_config(write(tmp_path, f'[control]\nsocket = "{socket}"\n{LINE}'))
    assert str(config.control.socket) == socket
