"""The daemon's log set-up: journald priorities, per-module levels, masked cards."""

from __future__ import annotations

import sys

import pytest
from loguru import logger

from daemon1521.logs import setup_logging


@pytest.fixture
def restore_logging():
    yield
    logger.remove()
    logger.add(sys.stderr)


def test_journal_lines_carry_syslog_priorities_and_module_levels(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    setup_logging("INFO", {"tests": "WARNING", "tests.quiet_not": "DEBUG"})
    logger.info("hidden: tests.* logs only warnings")
    logger.warning("card 6037991234567890 declined")
    logger.bind().patch(lambda r: r.update(name="daemon1521.daemon.supervisor")).info("shown")
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "<4>WARNING tests.test_daemon_logging: card 603799******7890 declined",
        "<6>INFO    daemon1521.daemon.supervisor: shown",
    ]
