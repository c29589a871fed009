"""``daemon1521 modem probe`` identifies every emulated personality.

One ``daemon1521 emulate`` process serves a modem of each personality on a
pty; the probe runs against each, in-process through click's runner (the
``modem`` group itself, so the test process's logging is left alone) and
once through the installed command, as an operator would run it.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from daemon1521.commands.modem import modem
from daemon1521.modem.profile import default_profile_dir
from tests.cli_support import console_script, read_json_lines, stop

PERSONALITIES = (
    "conexant-cx93001",
    "conexant-cx93001-v2013",
    "usr-5637",
    "generic-v253",
    "field-quirks",
    "multitech-mt5634zpx",
)
SPEED = "20"

# profile, model, firmware, codec chosen (from the +VSM=? listing), a listed codec
EXPECTED = {
    "conexant-cx93001": (
        "conexant-cx930xx",
        "CX93001-EIS_V0.2002-V92",
        "V0.2002-V92",
        "u8",
        "129:adpcm",
    ),
    "conexant-cx93001-v2013": (
        "conexant-cx930xx",
        "CX93001-EIS_V0.2013-V92",
        "V0.2013-V92",
        "ulaw",
        "133:pcm14",
    ),
    "usr-5637": ("usr-5637", "USR5637", "1.2.23", "ulaw", "129:s16le"),
    "generic-v253": ("generic-v253", "V253-VOICE", "1.0", "ulaw", "5:alaw"),
    "field-quirks": ("generic-v253", "FQ-56V", "0.9", "ulaw", "133:s16le"),
    "multitech-mt5634zpx": ("agere-mt5634zpx", "MT5634ZPX-PCI-V92", "1.32c", "ulaw", "132:adpcm"),
}


@pytest.fixture(scope="module")
def ptys() -> Iterator[dict[str, str]]:
    """personality -> pty of a running ``daemon1521 emulate``."""
    command = [console_script(), "emulate", "-n", str(len(PERSONALITIES)), "--speed", SPEED]
    for name in PERSONALITIES:
        command += ["-p", name]
    command += ["--duration", "60"]
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        records = read_json_lines(process.stdout, len(PERSONALITIES), timeout=15.0)
        yield {record["personality"]: record["pty"] for record in records}
    finally:
        stop(process)


@pytest.mark.parametrize("personality", PERSONALITIES)
def test_probe_identifies_each_personality(ptys, personality):
    result = CliRunner().invoke(
        modem, ["probe", ptys[personality], "--json", "--time-scale", SPEED]
    )
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    profile, model, firmware, codec, listed = EXPECTED[personality]
    assert info["profile"] == profile
    assert info["model"] == model
    assert info["firmware"] == firmware
    assert info["codec"] == codec
    assert listed in info["codecs"]
    assert f"{info['codec_code']}:{codec}" in info["codecs"]
    if profile == "generic-v253":
        assert info["matched_by"] == "fallback"  # identified as generic, with a warning
    else:
        assert info["matched_by"].startswith("ATI3")


def test_probe_from_the_installed_command_prints_a_table(ptys):
    result = subprocess.run(
        [console_script(), "modem", "probe", ptys["usr-5637"], "--time-scale", SPEED],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = dict(line.split(None, 1) for line in result.stdout.splitlines() if line.strip())
    assert rows["profile"].startswith("usr-5637 (matched by ATI3")
    assert rows["model"].strip() == "USR5637"
    assert "131:ulaw" in rows["codecs"]


def test_probe_of_a_port_with_nothing_on_it_fails_cleanly(tmp_path):
    result = CliRunner().invoke(
        modem, ["probe", str(tmp_path / "no-such-tty"), "--time-scale", SPEED]
    )
    assert result.exit_code == 1


def test_probe_warns_of_firmware_older_than_the_profiles_minimum(ptys, tmp_path):
    for shipped in default_profile_dir().glob("*.toml"):
        text = shipped.read_text()
        if shipped.name == "usr-5637.toml":
            text = text.replace('minimum = "1.2.23"', 'minimum = "1.3"')
        (tmp_path / shipped.name).write_text(text)
    result = CliRunner().invoke(
        modem,
        ["probe", ptys["usr-5637"], "--profiles-dir", str(tmp_path), "--time-scale", SPEED],
    )
    assert result.exit_code == 0, result.output
    rows = dict(line.split(None, 1) for line in result.stdout.splitlines() if line.strip())
    assert rows["firmware"].startswith("1.2.23 (WARNING: older than 1.3: ")


def test_probe_trace_records_the_dialogue(ptys, tmp_path):
    trace = tmp_path / "probe.trace"
    result = CliRunner().invoke(
        modem,
        ["probe", ptys["conexant-cx93001"], "--trace", str(trace), "--time-scale", SPEED],
    )
    assert result.exit_code == 0, result.output
    entries = [line.split(" ", 3)[1:] for line in trace.read_text().splitlines()]
    assert ["-", "open", ptys["conexant-cx93001"]] in entries
    assert [">", "cmd", "ATI3"] in entries
    assert ["<", "line", "CX93001-EIS_V0.2002-V92"] in entries
    assert ["<", "line", "OK"] in entries
    assert entries[-1][:2] == ["-", "close"]
