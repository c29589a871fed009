"""Issue 9, item 8: ``/dev/zero`` as a config or a bill file grew memory to gigabytes.

Every read of an operator's file is bounded. The commands run as child
processes under an address-space limit (so a regression fails fast rather
than eating the host) and their peak resident memory is checked.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.cli_support import console_script, run_capped

ADDRESS_SPACE = 1 << 30
"""The child's address-space limit: several times what the command needs."""
PEAK_RSS = 200 << 20
"""Resident memory a command may reach: the interpreter and its imports, and no file."""
TIMEOUT = 60.0


def run_bounded(args: list[str], tmp_path: Path) -> tuple[int, str, int]:
    """Exit code, stderr and peak RSS in bytes of ``daemon1521 ARGS``."""
    err_path = tmp_path / "stderr"
    with err_path.open("wb") as err:
        code, peak = run_capped(
            [console_script(), *args],
            ADDRESS_SPACE,
            TIMEOUT,
            tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    assert code != 124, f"daemon1521 {' '.join(args)} still running after {TIMEOUT} s"
    return code, err_path.read_text(errors="replace"), peak


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["config", "check", "/dev/zero"], "daemon1521 config check: /dev/zero: larger than"),
        (["run", "--config", "/dev/zero"], "daemon1521 run: /dev/zero: larger than"),
        (
            ["bills", "import", "--dry-run", "/dev/zero"],
            "error: /dev/zero: not a regular file",
        ),
    ],
    ids=["config-check", "run", "bills-import"],
)
def test_dev_zero_is_refused_at_once(tmp_path: Path, args: list[str], message: str) -> None:
    code, stderr, peak = run_bounded(args, tmp_path)
    assert code == 2, stderr
    assert stderr.startswith(message), stderr
    assert stderr.count("\n") == 1, stderr
    assert peak < PEAK_RSS, f"peak RSS {peak >> 20} MiB"


def test_a_config_bigger_than_any_real_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "daemon1521.toml"
    with path.open("w") as stream:
        for _ in range(40_000):
            stream.write("# " + "padding " * 8 + "\n")
    code, stderr, peak = run_bounded(["config", "check", str(path)], tmp_path)
    assert code == 2
    assert stderr == (
        f"daemon1521 config check: {path}: larger than 1048576 bytes; not a settings file?\n"
    )
    assert peak < PEAK_RSS
