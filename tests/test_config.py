"""The daemon's config file: defaults, the shipped example, and one precise message per mistake."""

from __future__ import annotations

import grp
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from daemon1521.cli import main
from daemon1521.config import (
    SECTIONS,
    ConfigError,
    LineConfig,
    RecoveryConfig,
    default_config,
    load_config,
)
from daemon1521.ivr.settings import IvrSettings

EXAMPLE = Path(__file__).resolve().parents[1] / "systemd" / "daemon1521.toml.example"
LINE = '[lines.l1]\nport = "/dev/ttyACM0"\n'


def example(tmp_path: Path) -> Path:
    """The shipped example, its control group one that exists on this host."""
    text = EXAMPLE.read_text(encoding="utf-8")
    assert 'group = "daemon1521"' in text
    own = grp.getgrgid(os.getgid()).gr_name
    return write(tmp_path, text.replace('group = "daemon1521"', f'group = "{own}"'))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "daemon1521.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_minimal_file_takes_the_documented_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, LINE))
    assert config.lines == (LineConfig(name="l1", port="/dev/ttyACM0"),)
    assert config.ivr == IvrSettings()
    assert config.store == Path("/var/lib/daemon1521/daemon1521.db")
    assert config.control.socket == Path("/run/daemon1521/control.sock")
    assert config.recovery == RecoveryConfig()
    assert config.language == "fa"
    assert config.logging.level == "INFO"


def test_the_example_loads_and_documents_every_key(tmp_path: Path) -> None:
    config = load_config(example(tmp_path))
    assert [line.name for line in config.lines] == ["line1", "line2"]
    assert config.lines[1].role == "outbound"
    text = EXAMPLE.read_text(encoding="utf-8")
    # its values are the defaults, so reading the example tells the truth
    assert config.ivr == IvrSettings()
    assert config.recovery == RecoveryConfig()
    assert config.drain_timeout == default_config().drain_timeout
    keys = {key for keys in SECTIONS.values() for key in keys}
    for key in sorted(keys):
        pattern = rf"^(#? ?{key} = |\[\w+\.{key}\])"
        assert re.search(pattern, text, re.MULTILINE), f"{key} is not in the example"
    for section in SECTIONS:
        assert f"[{section}" in text


def test_relative_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    text = '[store]\npath = "state/db.sqlite"\n[prompts]\ndir = "../prompts"\n' + LINE
    config = load_config(write(tmp_path, text))
    assert config.store == tmp_path.resolve() / "state" / "db.sqlite"
    assert config.prompts == tmp_path.resolve() / ".." / "prompts"


def test_ivr_and_logging_values_are_read(tmp_path: Path) -> None:
    text = (
        '[ivr]\nunit = "toman"\nformal_hundred = true\nfirst_digit_timeout = 6\n'
        '[logging]\nlevel = "debug"\n[logging.modules]\n"daemon1521.modem" = "warning"\n' + LINE
    )
    config = load_config(write(tmp_path, text))
    assert config.ivr.unit == "toman"
    assert config.ivr.formal_hundred is True
    assert config.ivr.first_digit_timeout == 6.0
    assert config.logging.level == "DEBUG"
    assert config.logging.modules == {"daemon1521.modem": "WARNING"}


def test_emulated_runs_need_no_lines(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, ""), require_lines=False).lines == ()


BAD = [
    ("[lnes.l1]\nport = 'x'\n", "lnes", "unknown key (known: daemon, store"),
    ("[ivr]\ntimeout = 3\n" + LINE, "ivr.timeout", "unknown key (known: first_digit_timeout"),
    ("[ivr]\ntries = '3'\n" + LINE, "ivr.tries", "expected int, got str ('3')"),
    (
        "[ivr]\nfirst_digit_timeout = 0.1\n" + LINE,
        "ivr.first_digit_timeout",
        "must be at least 0.5, not 0.1",
    ),
    (
        "[ivr]\nunit = 'dollar'\n" + LINE,
        "ivr.unit",
        "expected one of 'rial', 'toman', got 'dollar'",
    ),
    ("[ivr]\nformal_hundred = 1\n" + LINE, "ivr.formal_hundred", "expected bool, got int (1)"),
    (
        "[ivr]\nbill_min_digits = 13\nbill_max_digits = 8\n" + LINE,
        "ivr.bill_min_digits",
        "13 must not exceed bill_max_digits (8)",
    ),
    ("[ivr]\nyes_key = '11'\n" + LINE, "ivr.yes_key", "one telephone key"),
    (
        LINE + "role = 'in'\n",
        "lines.l1.role",
        "expected one of 'inbound', 'outbound', 'both', got 'in'",
    ),
    (LINE + "rings = 0\n", "lines.l1.rings", "must be at least 1, not 0"),
    (LINE + "speed = 9600\n", "lines.l1.speed", "unknown key (known: port, role, profile"),
    (LINE + "profile = 'nosuch'\n", "lines.l1.profile", "no firmware profile named 'nosuch'"),
    (LINE + "label = 3\n", "lines.l1.label", "expected str, got int (3)"),
    ("[lines.l1]\nrole = 'inbound'\n", "lines.l1.port", "missing"),
    ("[lines.l1]\nport = ''\n", "lines.l1.port", "'' is not a port"),
    (
        LINE + '[lines.l2]\nport = "/dev/ttyACM0"\n',
        "lines.l2.port",
        "/dev/ttyACM0 is already the port of lines.l1",
    ),
    ('[lines."line 1"]\nport = "/dev/ttyACM0"\n', "lines.line 1", "a line name is 1-32"),
    ("lines = 3\n", "lines", "expected table, got int (3)"),
    ("[lines]\nl1 = 'x'\n", "lines.l1", "expected table ([lines.l1]), got 'x'"),
    ("", "lines", "no lines configured"),
    ("[logging]\nlevel = 'LOUD'\n" + LINE, "logging.level", "expected one of 'TRACE', 'DEBUG'"),
    (
        "[logging.modules]\n'daemon1521.modem' = 'quiet'\n" + LINE,
        "logging.modules.daemon1521.modem",
        "'WARNING', 'ERROR', 'CRITICAL', got 'quiet'",
    ),
    (
        "[recovery]\nbackoff_initial = 10\nbackoff_max = 5\n" + LINE,
        "recovery.backoff_max",
        "must not be less than recovery.backoff_initial",
    ),
    (
        "[recovery]\nfailures_before_out_of_service = 0\n" + LINE,
        "recovery.failures_before_out_of_service",
        "must be at least 1, not 0",
    ),
    (
        "[daemon]\ndrain_timeout = -1\n" + LINE,
        "daemon.drain_timeout",
        "must be at least 0.0, not -1",
    ),
    ("[control]\ngroup = 'no group'\n" + LINE, "control.group", "not a group name"),
    ("[control]\nsocket = ''\n" + LINE, "control.socket", "must not be empty"),
    ("[prompts]\nlanguage = 'Persian'\n" + LINE, "prompts.language", "not a language code"),
    ("[store]\npath = 5\n" + LINE, "store.path", "expected str, got int (5)"),
    (
        "[daemon]\ndrain = 5\n" + LINE,
        "daemon.drain",
        "unknown key (known: drain_timeout, firmware_profiles)",
    ),
    (LINE + "name = 'l2'\n", "lines.l1.name", "unknown key (the table's name is the line's)"),
    ("[logging]\nmodules = 'x'\n" + LINE, "logging.modules", "expected table, got str ('x')"),
    ("[ivr]\ntries = 2.0\n" + LINE, "ivr.tries", "expected int, got float (2.0)"),
    ("[recovery]\nhealth_check = '5m'\n" + LINE, "recovery.health_check", "got str ('5m')"),
]


@pytest.mark.parametrize(("text", "key", "problem"), BAD, ids=[b[1] for b in BAD])
def test_each_mistake_names_file_key_and_problem(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: {key}: "), message
    assert problem in message
    assert caught.value.key == key


def test_unreadable_files_say_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: no such file"):
        load_config(tmp_path / "nope.toml")
    bad = write(tmp_path, "[ivr\n")
    with pytest.raises(ConfigError, match=r"daemon1521\.toml: not valid TOML: .*line 1"):
        load_config(bad)
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


def test_config_check_command(tmp_path: Path) -> None:
    runner = CliRunner()
    shipped = example(tmp_path)
    good = runner.invoke(main, ["config", "check", str(shipped)])
    assert good.exit_code == 0, good.output
    assert "OK" in good.output and "line line2" in good.output
    as_json = runner.invoke(main, ["config", "check", "--json", str(shipped)])
    assert '"unit": "rial"' in as_json.output
    path = write(tmp_path, LINE + "rings = 'two'\n")
    bad = runner.invoke(main, ["config", "check", str(path)])
    assert bad.exit_code == 2
    assert f"{path}: lines.l1.rings: expected int, got str ('two')" in bad.output
