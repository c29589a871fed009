"""Line traces: what the modem and the host said, with every DTMF digit as ``*``."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import numpy as np
import pytest

from daemon1521.config import parse_config
from daemon1521.dsp import codecs
from daemon1521.dsp.tones import tone
from daemon1521.emulator.rig import wait_cancelled
from daemon1521.modem.trace import LineTrace, TraceFile, mask_caller_id, mask_command
from tests.voice_support import CALLER, call_in, collect_keys, emulated_site

CALLER_KEYS = "4711#"
CARD_KEYS = "6037991234567890*#"
FAR = "5550002"
SECRETS = ("4711", "603799", "1234567890", FAR)


def entries(path: Path) -> list[tuple[str, str, str]]:
    """(direction, kind, text) of each trace line, the timestamp left out."""
    out = []
    for line in path.read_text().splitlines():
        _stamp, direction, kind, *text = line.split(" ", 3)
        out.append((direction, kind, text[0] if text else ""))
    return out


def assert_no_key_digits(path: Path) -> None:
    """No DTMF digit in a DLE event, a +VTS value or a dial string, anywhere in the trace."""
    text = path.read_text()
    for secret in SECRETS:
        assert secret not in text
    for _direction, kind, body in entries(path):
        if kind == "dle":
            assert body not in "0123456789#ABCD" or body == "", body
        upper = body.upper()
        if "+VTS=" in upper:
            value = upper.split("+VTS=", 1)[1].split(";")[0]
            assert not re.search(r"[0-9#A-D]", value), body
        if kind in ("cmd", "line") and re.match(r"\s*AT.*D[T P]?[\d*#]", upper):
            assert not re.search(r"D[TP]?[\d#A-D]", upper), body


@pytest.mark.parametrize("personality", ["conexant-cx93001", "usr-5637", "generic-v253"])
async def test_trace_of_a_call_holds_no_digit(personality, tmp_path):
    path = tmp_path / "line.trace"
    async with emulated_site(personality, trace=path) as (rig, modem):
        phone, _incoming = await call_in(rig, modem)
        prompt = codecs.encode(tone([800.0], 0.3, level_dbm0=-12.0), modem.codec)
        await modem.play(prompt, barge_in=False)
        await phone.press(CALLER_KEYS)
        assert await collect_keys(modem, len(CALLER_KEYS)) == list(CALLER_KEYS)
        await phone.hang_up()
        await modem.hang_up()
        far = rig.phone(FAR)
        far.lift()  # busy: the dial string is still sent
        await modem.dial(FAR)
        await far.hang_up()
    lines = entries(path)
    kinds = {kind for _d, kind, _t in lines}
    assert {"open", "cmd", "line", "dle", "audio", "close"} <= kinds
    assert (">", "cmd", "AT+VTX") in lines or any("+VTX" in t for _d, _k, t in lines)
    assert any(d == "<" and k == "dle" and t == "*" for d, k, t in lines)  # the caller's keys
    assert any(d == ">" and k == "audio" for d, k, _t in lines)  # the prompt, as a count
    assert any(k == "cmd" and "D" in t and "*" in t for _d, k, t in lines)  # the dial
    assert_no_key_digits(path)
    assert CALLER not in path.read_text()  # caller ID masked as the logs mask it
    assert any(k == "line" and "NMBR" in t for _d, k, t in lines)


async def test_trace_of_digits_sent_to_the_bank_holds_none(tmp_path):
    path = tmp_path / "out.trace"
    async with emulated_site("usr-5637", trace=path) as (rig, modem):
        far = rig.phone(FAR)

        async def pick_up() -> None:
            assert await far.wait_for_ring(60) is not None
            await far.answer()

        answering = asyncio.create_task(pick_up())
        try:
            assert await modem.dial(FAR) == "answered"
            await answering
        finally:
            await wait_cancelled(answering)
        await modem.send_dtmf(CARD_KEYS)
        await modem.hang_up()
        await far.hang_up()
    sent = [t for d, k, t in entries(path) if d == ">" and k == "cmd"]
    assert any("+VTS=" in t for t in sent)
    assert any(re.search(r"D[TP]?\*+;?$", t) for t in sent)
    assert_no_key_digits(path)


@pytest.mark.parametrize(
    ("command", "masked"),
    [
        ("AT+VTS=1,2,#", "AT+VTS=*,*,*"),
        ("AT+VTS={5,20},[933,933,120]", "AT+VTS={*,**},[***,***,***]"),
        ("ATDT09121234567;", "ATDT***********;"),
        ("ATX4DT5550002;", "ATX4DT*******;"),
        ("AT&D2S7=50+VDR=1,15", "AT&D2S7=50+VDR=1,15"),
        ("AT+VSM=131,8000", "AT+VSM=131,8000"),
        ("at+fclass=8;+vts=9", "at+fclass=8;+vts=*"),
    ],
)
def test_mask_command(command: str, masked: str) -> None:
    assert mask_command(command) == masked


def test_split_reads_audio_counts_and_shielded_dle(tmp_path):
    path = tmp_path / "t.trace"
    trace = LineTrace(TraceFile(path))
    trace.sent(b"ATD12")  # a dial string split across writes
    trace.sent(b"34;\r")
    trace.received(b"ATD1")  # and its echo across reads
    trace.received(b"234;\r\r\nOK\r\n\x10R\x10/\x101\x101\x10~")
    trace.sent(b"AT+VRX\r")
    trace.received(b"\r\nCONNECT\r\n")
    trace.received(bytes([0x80, 0x10, 0x10, 0x7F]) + b"\x10/\x10")
    trace.received(b"9\x109\x10~" + bytes(10) + b"\x10\x03\r\nOK\r\n")
    trace.sent(b"AT+VTX\r")
    trace.received(b"\r\nCONNECT\r\n")
    trace.sent(bytes(100) + b"\x10\x10\x10\x03")
    trace.close()
    lines = entries(path)
    assert lines == [
        (">", "cmd", "ATD****;"),
        ("<", "line", "ATD****;"),
        ("<", "line", "OK"),
        ("<", "dle", "R"),
        ("<", "dle", "/"),
        ("<", "dle", "*"),
        ("<", "dle", "*"),
        ("<", "dle", "~"),
        (">", "cmd", "AT+VRX"),
        ("<", "line", "CONNECT"),
        ("<", "audio", "3 bytes"),
        ("<", "dle", "/"),
        ("<", "dle", "*"),
        ("<", "dle", "*"),
        ("<", "dle", "~"),
        ("<", "audio", "10 bytes"),
        ("<", "dle", "ETX"),
        ("<", "line", "OK"),
        (">", "cmd", "AT+VTX"),
        ("<", "line", "CONNECT"),
        (">", "audio", "101 bytes"),
        (">", "dle", "ETX"),
    ]


def test_trace_is_rotated_by_size(tmp_path):
    path = tmp_path / "r.trace"
    trace = LineTrace(TraceFile(path, max_bytes=2000, backups=2))
    for _ in range(200):
        trace.sent(b"AT+VGT=128\r")
    trace.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["r.trace", "r.trace.1", "r.trace.2"]
    assert all((tmp_path / name).stat().st_size <= 2000 for name in files)
    assert np.all([line.endswith("AT+VGT=128") for line in path.read_text().splitlines()])


def test_a_line_takes_a_trace_file_in_its_config():
    config = parse_config(
        {"lines": {"line1": {"port": "/dev/ttyACM0", "trace": "/var/log/line1.trace"}}},
        check_profiles=False,
    )
    assert config.line("line1").trace == "/var/log/line1.trace"
    assert parse_config({"lines": {"l2": {"port": "/dev/ttyACM1"}}}).line("l2").trace is None


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        ("NMBR = 09121234567", "NMBR = ***********"),
        ("NMBR=P", "NMBR=P"),
        ("DDN_NMBR= 1521", "DDN_NMBR= ****"),
        ("NAME = ALI REZAEI    ", "NAME = *** ******    "),
        ("DATE = 1203", "DATE = 1203"),
    ],
)
def test_caller_id_lines_keep_their_layout_not_the_caller(line: str, masked: str) -> None:
    assert mask_caller_id(line) == masked
