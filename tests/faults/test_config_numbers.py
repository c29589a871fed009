"""Issue 9, item 7: NaN and infinities in the config.

``drain_timeout = nan`` used to pass ``config check`` and then crash the
daemon on SIGTERM (the stop deadline became NaN). TOML allows nan and inf;
no setting of the daemon means them, so every float key refuses them with
one line naming the file, the key and the value, before anything starts.
"""

from __future__ import annotations

import math
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner

from daemon1521.cli import main
from daemon1521.config import ConfigError, RecoveryConfig, load_config, parse_config
from daemon1521.ivr.settings import IvrSettings

LINE = '[lines.l1]\nport = "/dev/ttyACM0"\n'


def _float_keys(section: str, kind: type) -> list[tuple[str, str]]:
    info = msgspec.inspect.type_info(kind)
    assert isinstance(info, msgspec.inspect.StructType | msgspec.inspect.DataclassType)
    return [
        (section, field.encode_name)
        for field in info.fields
        if isinstance(getattr(field.type, "type", field.type), msgspec.inspect.FloatType)
    ]


FLOAT_KEYS = [
    ("daemon", "drain_timeout"),
    *_float_keys("recovery", RecoveryConfig),
    *_float_keys("ivr", IvrSettings),
]
NOT_NUMBERS = ["nan", "+nan", "-nan", "inf", "+inf", "-inf"]


def test_the_float_keys_are_all_found() -> None:
    keys = {f"{section}.{name}" for section, name in FLOAT_KEYS}
    assert {"daemon.drain_timeout", "recovery.backoff_max", "ivr.max_call_seconds"} <= keys
    assert len(keys) >= 9


@pytest.mark.parametrize("value", NOT_NUMBERS)
@pytest.mark.parametrize(("section", "name"), FLOAT_KEYS, ids=[".".join(k) for k in FLOAT_KEYS])
def test_every_float_key_refuses_nan_and_infinity(
    tmp_path: Path, section: str, name: str, value: str
) -> None:
    path = tmp_path / "daemon1521.toml"
    path.write_text(f"[{section}]\n{name} = {value}\n{LINE}", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.key == f"{section}.{name}"
    assert str(caught.value) == (f"{path}: {section}.{name}: {float(value)} is not a usable number")


def test_config_check_and_run_refuse_a_nan_drain_timeout(tmp_path: Path) -> None:
    path = tmp_path / "daemon1521.toml"
    path.write_text(f"[daemon]\ndrain_timeout = nan\n{LINE}", encoding="utf-8")
    expected = f"{path}: daemon.drain_timeout: nan is not a usable number"
    runner = CliRunner()
    check = runner.invoke(main, ["config", "check", str(path)])
    assert check.exit_code == 2
    assert check.output == f"daemon1521 config check: {expected}\n"
    run = runner.invoke(main, ["run", "--config", str(path)])
    assert run.exit_code == 2
    assert run.output == f"daemon1521 run: {expected}\n"
    assert "Traceback" not in check.output + run.output


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize(("section", "name"), FLOAT_KEYS, ids=[".".join(k) for k in FLOAT_KEYS])
def test_tables_built_in_code_refuse_them_too(section: str, name: str, value: float) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({section: {name: value}}, None, require_lines=False)
    assert caught.value.key == f"{section}.{name}"
    if section == "ivr":
        with pytest.raises(ValueError, match=f"^ivr.{name}: {value} is not a usable number$"):
            IvrSettings.from_mapping({name: value})
