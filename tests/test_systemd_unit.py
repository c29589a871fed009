"""The files in systemd/: the unit verified by systemd itself, the udev rule, the sysusers entry."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SYSTEMD = Path(__file__).resolve().parents[1] / "systemd"
UNIT = SYSTEMD / "daemon1521.service"
RULES = SYSTEMD / "99-daemon1521-modems.rules"
SYSUSERS = SYSTEMD / "daemon1521.sysusers.conf"
INSTALLED = "/opt/daemon1521/venv/bin/daemon1521"
CONSOLE_SCRIPT = Path(sys.executable).with_name("daemon1521")

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed"
)


def unit_settings() -> dict[str, list[str]]:
    """``Section.Key`` -> every value it is given (keys may repeat, as DeviceAllow= does)."""
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        settings.setdefault(f"{section}.{key}", []).append(value)
    return settings


def local_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's console script."""
    text = UNIT.read_text().replace(INSTALLED, str(CONSOLE_SCRIPT))
    path = tmp_path / "daemon1521.service"
    path.write_text(text)
    return path


@needs_analyze
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "verify", str(local_unit(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "daemon1521.service" not in result.stderr, result.stderr


@needs_analyze
def test_systemd_rates_the_sandbox_as_tight(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            "systemd-analyze",
            "security",
            "--offline=yes",
            "--threshold=30",
            str(local_unit(tmp_path)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-2000:]
    exposure = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout)
    assert exposure and float(exposure.group(1)) <= 3.0


def test_the_unit_is_what_the_daemon_expects() -> None:
    s = unit_settings()
    expected = {
        "Service.Type": ["notify"],
        "Service.Restart": ["on-failure"],
        "Service.User": ["daemon1521"],
        "Service.SupplementaryGroups": ["dialout"],
        "Service.StateDirectory": ["daemon1521"],
        "Service.RuntimeDirectory": ["daemon1521"],
        "Service.ConfigurationDirectory": ["daemon1521"],
        "Service.ProtectSystem": ["strict"],
        "Service.NoNewPrivileges": ["yes"],
        "Service.PrivateTmp": ["yes"],
        "Service.LimitCORE": ["0"],
        "Service.DevicePolicy": ["closed"],
        "Service.ExecReload": ["/bin/kill -HUP $MAINPID"],
    }
    for key, value in expected.items():
        assert s.get(key) == value, key
    assert s["Service.WatchdogSec"] and s["Service.TimeoutStopSec"]
    assert all(re.fullmatch(r"char-tty(ACM|USB|S) rw", d) for d in s["Service.DeviceAllow"])
    assert s["Service.ExecStart"] == [f"{INSTALLED} run --config /etc/daemon1521/daemon1521.toml"]
    # the socket's default place is the unit's RuntimeDirectory, the store its StateDirectory
    from daemon1521.config import DEFAULT_SOCKET, DEFAULT_STORE

    assert DEFAULT_SOCKET.parent == Path("/run/daemon1521")
    assert DEFAULT_STORE.parent == Path("/var/lib/daemon1521")


def test_exec_start_is_a_command_line_the_daemon_accepts(tmp_path: Path) -> None:
    if not CONSOLE_SCRIPT.exists():
        pytest.skip("console script not installed")
    missing = tmp_path / "absent.toml"
    result = subprocess.run(
        [str(CONSOLE_SCRIPT), "run", "--config", str(missing)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"{missing}: no such file" in result.stderr


def test_udev_rule_keeps_modem_manager_away_and_names_the_modems() -> None:
    text = RULES.read_text()
    rules = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assignment = re.compile(r'^[A-Z_]+(\{[^}]+\})?(==|!=|=|\+=|:=)"[^"]*"$')
    for rule in rules:
        for part in rule.split(", "):
            assert assignment.match(part.strip()), f"not a udev key: {part!r} in {rule!r}"
    assert 'ENV{ID_MM_DEVICE_IGNORE}="1"' in rules
    assert any(r.startswith("ENV{ID_PATH}") and 'SYMLINK+="daemon1521/by-path/' in r for r in rules)
    gotos = set(re.findall(r'GOTO="([^"]+)"', text))
    labels = set(re.findall(r'LABEL="([^"]+)"', text))
    assert gotos == labels == {"daemon1521_end"}
    # every modem in the README's hardware table is matched
    for vendor, product in [("0572", "1340"), ("0572", "1329"), ("0baf", "0303")]:
        assert f'ATTRS{{idVendor}}=="{vendor}", ATTRS{{idProduct}}=="{product}"' in text
    if shutil.which("udevadm"):
        check = subprocess.run(["udevadm", "verify", str(RULES)], capture_output=True, text=True)
        if "Unknown command" not in check.stderr:
            assert check.returncode == 0, check.stderr


def test_sysusers_puts_the_daemon_user_in_dialout(tmp_path: Path) -> None:
    text = SYSUSERS.read_text()
    assert re.search(r"^u daemon1521 ", text, re.MULTILINE)
    assert re.search(r"^m daemon1521 dialout$", text, re.MULTILINE)
    if shutil.which("systemd-sysusers") is None:
        return
    (tmp_path / "etc").mkdir()
    result = subprocess.run(
        ["systemd-sysusers", "--dry-run", f"--root={tmp_path}", str(SYSUSERS)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Creating user 'daemon1521'" in result.stdout + result.stderr
