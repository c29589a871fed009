"""Raw-byte conversations with the emulated modems over real pseudo-terminals.

A tiny raw client (no driver) opens the modem's stable link the way the
daemon opens /dev/ttyACM0, writes bytes and reads until patterns appear. The
expected bytes per chip are written down here from VOICE-MODEMS.md, not read
from the personality files, so the files are checked against the facts.
The exchange clock runs at 50x real time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
import tty
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from daemon1521.dsp import codecs
from daemon1521.dsp.dtmf import DtmfDetector
from daemon1521.dsp.tones import tone
from daemon1521.emulator.clock import EmuClock
from daemon1521.emulator.exchange import Exchange
from daemon1521.emulator.modem import EmulatedModem, load_personality
from daemon1521.emulator.phone import Phone
from daemon1521.emulator.toneplan import TonePlan

SPEED = 50.0
EPOCH = datetime(2025, 3, 4, 12, 30)
MODEM_NUMBER = "1521"
CALLER = "5550001"
FINAL = rb"\r\n(OK|ERROR|CONNECT|VCON|BUSY|NO ANSWER|NO DIAL ?TONE|NO CARRIER)\r\n"


# --- the raw client ----------------------------------------------------------------


class RawClient:
    """Opens a serial device node raw and non-blocking; sends bytes, waits for patterns."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.fd: int | None = None
        self.buf = bytearray()
        self.pos = 0
        self.reads = 0
        self.eof = False
        self._reading = False
        self._arrived = asyncio.Event()

    async def open(self) -> RawClient:
        self.fd = os.open(self.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)
        self.resume()
        return self

    def pause(self) -> None:
        """Stop reading (the host is busy): the modem's output backs up."""
        if self._reading and self.fd is not None:
            asyncio.get_running_loop().remove_reader(self.fd)
            self._reading = False

    def resume(self) -> None:
        if not self._reading and self.fd is not None and not self.eof:
            asyncio.get_running_loop().add_reader(self.fd, self._readable)
            self._reading = True

    def _readable(self) -> None:
        assert self.fd is not None
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.eof = True
            self.pause()
        self.reads += 1
        self.buf += data
        self._arrived.set()

    async def send(self, data: bytes, timeout: float = 10.0) -> None:
        """Write everything, waiting while the modem applies back-pressure."""
        assert self.fd is not None
        view = memoryview(data)
        deadline = time.monotonic() + timeout
        while view:
            try:
                view = view[os.write(self.fd, view) :]
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError("the modem stopped taking data") from None
                await asyncio.sleep(0.001)

    async def _wait_for(self, found, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not found():
            if self.eof:
                raise EOFError(f"port closed; unread: {self.unread()!r}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"not seen in time; unread: {self.unread()[-300:]!r}")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), min(left, 0.05))

    async def expect(self, pattern: bytes, timeout: float = 10.0) -> bytes:
        """Everything unread up to and including the first match of a regex."""
        rx = re.compile(pattern, re.S)
        match: list[re.Match[bytes]] = []

        def found() -> bool:
            m = rx.search(self.buf, self.pos)
            if m:
                match.append(m)
            return m is not None

        await self._wait_for(found, timeout)
        out = bytes(self.buf[self.pos : match[0].end()])
        self.pos = match[0].end()
        return out

    async def exactly(self, expected: bytes, timeout: float = 10.0) -> None:
        """The next bytes are exactly ``expected``."""
        await self._wait_for(lambda: len(self.buf) - self.pos >= len(expected), timeout)
        got = bytes(self.buf[self.pos : self.pos + len(expected)])
        assert got == expected
        self.pos += len(expected)

    async def command(self, line: bytes, timeout: float = 10.0) -> bytes:
        """Send a command line; return the response up to its final result code."""
        await self.send(line + b"\r")
        return await self.expect(FINAL, timeout)

    def unread(self) -> bytes:
        return bytes(self.buf[self.pos :])

    def skip(self) -> bytes:
        out = self.unread()
        self.pos = len(self.buf)
        return out

    async def quiet(self, seconds: float) -> bytes:
        """Whatever arrives in ``seconds`` of real time."""
        await asyncio.sleep(seconds)
        return self.skip()

    def close(self) -> None:
        self.pause()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


async def until(condition, timeout: float = 10.0) -> None:
    """Wait (real seconds) for a condition the emulation will make true."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.002)


def unshield(data: bytes, dle_sub: bool = False) -> tuple[bytes, list[tuple[int, str]]]:
    """Split a modem-to-host stream into audio bytes and (audio position, event) pairs."""
    audio = bytearray()
    events: list[tuple[int, str]] = []
    i = 0
    while i < len(data):
        if data[i] == 0x10 and i + 1 < len(data):
            code = data[i + 1]
            if code == 0x10:
                audio.append(0x10)
            elif code == 0x1A and dle_sub:
                audio += b"\x10\x10"
            else:
                events.append((len(audio), chr(code)))
            i += 2
        else:
            audio.append(data[i])
            i += 1
    return bytes(audio), events


# --- what each chip does, from VOICE-MODEMS.md ------------------------------------------


@dataclass(frozen=True)
class Chip:
    name: str
    ati0: bytes
    ati3: bytes
    codec: int  # its 8-bit unsigned +VSM code
    sep: bytes  # caller ID "="
    voice_ring: bytes  # a ring reported in voice mode
    cid_setup: tuple[bytes, ...]  # what caller ID needs besides +VCID=1
    compact_fclass: bool  # AT+FCLASS? without the blank line before OK
    vls1_tail: bytes  # what follows OK when VLS=1 answers a ringing line
    vtx_end: bytes  # the answer to the host's DLE ETX
    wrapped: bool  # DTMF as DLE / ... DLE ~
    answered: bytes  # voice ATD result once the far end answers
    no_dialtone: bytes
    hangup: bytes  # events (regex) while recording after the far end hangs up
    silence: bool  # +VSD honoured
    dle_sub: bool = False
    overrun: bool = True
    vrx_events: bool = True  # DLE events (keys, tones) reported during +VRX


CHIPS = {
    c.name: c
    for c in (
        Chip(
            "conexant-cx93001",
            b"56000",
            b"CX93001-EIS_V0.2002-V92",
            1,
            b" = ",
            b"\x10R",
            (),
            True,
            b"",
            b"\r\nOK\r\n",
            True,
            b"OK",
            b"NO DIALTONE",
            rb"\x10b.*\x10b",
            False,
        ),
        Chip(
            "conexant-cx93001-v2013",
            b"56000",
            b"CX93001-EIS_V0.2013-V92",
            1,
            b" = ",
            b"\x10R",
            (),
            True,
            b"",
            b"\r\nOK\r\n",
            True,
            b"OK",
            b"NO DIALTONE",
            rb"\x10b.*\x10b",
            False,
        ),
        Chip(
            "usr-5637",
            b"5601",
            b"U.S. Robotics 56K FAX USB V1.2.23",
            128,
            b"=",
            b"\r\nRING\r\n",
            (),
            False,
            b"\x10H",
            b"\x10\x03\r\nOK\r\n",
            True,
            b"VCON",
            b"NO DIALTONE",
            rb"\x10b.*\x10b",
            True,
        ),
        Chip(
            "generic-v253",
            b"V253",
            b"Generic V.253 voice modem 1.0",
            1,
            b"=",
            b"\r\nRING\r\n",
            (),
            False,
            b"",
            b"\r\nOK\r\n",
            False,
            b"OK",
            b"NO DIALTONE",
            rb"\x10l.*\x10b.*\x10b",
            True,
        ),
        Chip(
            "field-quirks",
            b"56000",
            b"FQ-56V Field Quirks voice modem 0.9",
            128,
            b" = ",
            b"\r\nRING\r\n",
            (),
            True,
            b"\r\nRING\r\n\x10H",
            b"\x10\x03\r\nOK\r\n",
            True,
            b"VCON",
            b"NO DIAL TONE",
            b"",
            False,
            dle_sub=True,
            overrun=False,
        ),
        Chip(
            "multitech-mt5634zpx",
            b"56000",
            b"LT V.92 1.0 MT5634ZPX-PCI-V92 Internal Data/Fax/Voice Modem Version 1.32c",
            128,
            b"=",
            b"\r\nRING\r\n",
            (),
            False,
            b"",
            b"\r\nOK\r\n",
            False,
            b"OK",
            b"NO DIALTONE",
            b"",  # section 3: no DLE events during +VRX, so no hang-up hint there
            False,  # +VSD is taken, but s / q never come while recording
            overrun=False,
            vrx_events=False,
        ),
    )
}
NAMES = list(CHIPS)
REAL_CHIPS = ["conexant-cx93001", "usr-5637"]


# --- the test bed ----------------------------------------------------------------------------


@dataclass
class Bed:
    chip: Chip
    clock: EmuClock
    exchange: Exchange
    modem: EmulatedModem
    host: RawClient
    caller: Phone

    def phone(self, number: str, **kwargs: object) -> Phone:
        return Phone.on(self.exchange, number, **kwargs)  # type: ignore[arg-type]

    async def wait(self, seconds: float) -> None:
        await self.clock.sleep(seconds)

    async def voice_mode(self, caller_id: bool = True) -> None:
        """The usual init: echo off, voice mode, caller ID per the chip."""
        for line in (b"ATE0", b"AT+FCLASS=8"):
            assert (await self.host.command(line)).endswith(b"OK\r\n")
        if caller_id:
            for line in (b"AT+VCID=1", *self.chip.cid_setup):
                assert (await self.host.command(line)).endswith(b"OK\r\n")

    async def incoming_call(self) -> asyncio.Task[str]:
        """The caller dials the modem; returns once the first ring is reported."""
        task = asyncio.create_task(self.caller.dial(MODEM_NUMBER))
        await self.host.expect(re.escape(self.chip.voice_ring), timeout=15)
        return task

    async def answer(self, dial: asyncio.Task[str]) -> None:
        await self.host.command(b"AT+VLS=1")
        assert await asyncio.wait_for(dial, 15) == "answered"
        await asyncio.sleep(0.05)
        self.host.skip()


@pytest.fixture
async def make_bed(tmp_path: Path) -> AsyncIterator:
    beds: list[Bed] = []

    async def make(name: str, plan: TonePlan | None = None) -> Bed:
        clock = EmuClock(SPEED)
        exchange = Exchange(clock, plan or TonePlan(), epoch=EPOCH)
        modem = EmulatedModem(clock, name, link=tmp_path / f"ttyModem{len(beds)}")
        exchange.add_line(MODEM_NUMBER, modem)
        caller = Phone.on(exchange, CALLER)
        await exchange.start()
        await modem.open()
        host = await RawClient(modem.link).open()  # type: ignore[arg-type]
        bed = Bed(CHIPS[name], clock, exchange, modem, host, caller)
        beds.append(bed)
        return bed

    yield make
    for bed in beds:
        bed.host.close()
        await bed.modem.close()
        await bed.exchange.stop()


# --- the command channel -----------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
async def test_init_sequence_byte_for_byte(make_bed, name: str) -> None:
    bed = await make_bed(name)
    chip, host = bed.chip, bed.host
    assert Path(bed.modem.link).resolve() == Path(bed.modem.pty_path)
    await host.send(b"ATZ\r")
    await host.exactly(b"ATZ\r\r\nOK\r\n")
    await host.send(b"ATE0\r")
    await host.exactly(b"ATE0\r\r\nOK\r\n")  # ATE0 itself is still echoed
    await host.send(b"ATV1\r")
    await host.exactly(b"\r\nOK\r\n")
    await host.send(b"ATI0\r")
    await host.exactly(b"\r\n" + chip.ati0 + b"\r\n\r\nOK\r\n")
    await host.send(b"ATI3\r")
    await host.exactly(b"\r\n" + chip.ati3 + b"\r\n\r\nOK\r\n")
    await host.send(b"AT+FCLASS=8\r")
    await host.exactly(b"\r\nOK\r\n")
    await host.send(b"AT+FCLASS?\r")
    blank = b"" if chip.compact_fclass else b"\r\n"
    await host.exactly(b"\r\n8\r\n" + blank + b"OK\r\n")
    for line in (
        b"AT+VCID=1",
        *chip.cid_setup,
        b"AT+VSM=%d,8000" % chip.codec,
        b"AT+VSD=128,50",
        b"AT+VGT=128",
        b"AT+VGR=128",
        b"AT+VIT=0",
        b"AT+IFC=2,2",
    ):
        await host.send(line + b"\r")
        await host.exactly(b"\r\nOK\r\n")
    await host.send(b"AT+VSM?\r")
    await host.expect(rb"\r\n%d,8000" % chip.codec)
    assert (await bed.host.quiet(0.05)).endswith(b"OK\r\n")


async def test_listings_follow_each_chips_grammar(make_bed) -> None:
    cx = await make_bed("conexant-cx93001")
    usr = await make_bed("usr-5637")
    fq = await make_bed("field-quirks")
    for bed in (cx, usr, fq):
        await bed.host.command(b"ATE0+FCLASS=8")
    listing = await cx.host.command(b"AT+VSM=?")
    # the CX93001's own grammar: bare numbers (issue 11, VOICE-MODEMS.md section 7)
    assert listing == (
        b'\r\n0,"SIGNED PCM",8,0,8000,0,0\r\n1,"UNSIGNED PCM",8,0,8000,0,0\r\n'
        b'129,"IMA ADPCM",4,0,8000,0,0\r\n130,"UNSIGNED PCM",8,0,8000,0,0\r\n\r\nOK\r\n'
    )
    listing = await usr.host.command(b"AT+VSM=?")
    assert b'\r\n131,"8-BIT ULAW",(8000)\r\n' in listing
    later = await make_bed("conexant-cx93001-v2013")
    await later.host.command(b"ATE0+FCLASS=8")
    listing = await later.host.command(b"AT+VSM=?")
    assert b'\r\n131,"Mu-Law",8,0,8000,0,0\r\n132,"A-Law",8,0,8000,0,0\r\n' in listing
    assert b'\r\n133,"14 bit PCM",14,0,8000,0,0\r\n' in listing
    assert await later.host.command(b"AT+VSM=131,8000") == b"\r\nOK\r\n"
    assert await later.host.command(b"AT+VSM=133,8000") == b"\r\nERROR\r\n"  # not streamed
    listing = await fq.host.command(b"AT+VSM=?")
    assert b'(131),"mu-law",(8),(0),(8000),(0),(0)' in listing  # lower-case test answers
    assert await fq.host.command(b"AT+GMI") == b"\r\n+GMI: FIELD QUIRKS\r\n\r\nOK\r\n"
    assert await usr.host.command(b"AT+GMI") == b"\r\nU.S. Robotics\r\n\r\nOK\r\n"


@pytest.mark.parametrize("name", REAL_CHIPS)
async def test_v250_line_handling(make_bed, name: str) -> None:
    host = (await make_bed(name)).host
    # several commands on a line, case-insensitive prefix and body
    assert await host.command(b"at e0 v1") == b"at e0 v1\r\r\nOK\r\n"
    assert await host.command(b"AT+FCLASS=8;+VLS?") == b"\r\n0\r\n\r\nOK\r\n"
    # S-registers: read as three digits, write, the selected register (Hayes "?" / "=")
    assert await host.command(b"ATS0=2S0?") == b"\r\n002\r\n\r\nOK\r\n"
    assert await host.command(b"ATS7?") in (b"\r\n050\r\n\r\nOK\r\n", b"\r\n060\r\n\r\nOK\r\n")
    assert await host.command(b"ATS3=300") == b"\r\nERROR\r\n"
    assert await host.command(b"ATS99?") == b"\r\nERROR\r\n"
    assert await host.command(b"ATS0?") == b"\r\n002\r\n\r\nOK\r\n"
    # A/ repeats the last line at once, without CR
    await host.send(b"A/")
    assert await host.expect(FINAL) == b"\r\n002\r\n\r\nOK\r\n"
    assert await host.command(b"ATS0?=0?") == b"\r\n002\r\n\r\n000\r\n\r\nOK\r\n"
    # backspace editing, echoed as BS SP BS
    await host.command(b"ATE1")
    assert await host.command(b"ATI3\b\bE0") == b"ATI3\b \b\b \bE0\r\r\nOK\r\n"
    # an LF after the CR is echoed too (after the result: it came later)
    await host.command(b"ATE1")
    await host.send(b"AT\r\n")
    await host.exactly(b"AT\r\r\nOK\r\n\n")
    await host.command(b"ATE0")
    # unknown commands, bad values, an over-long line, a broken line: ERROR
    for bad in (
        b"ATJ",
        b"AT+FOO",
        b"AT+FCLASS=9",
        b"ATE2",
        b"ATV1+FCLASS=8+VLS=1",
        b"AT" + b"E0" * 40,
    ):
        assert await host.command(bad) == b"\r\nERROR\r\n", bad
    # commands before a syntax error still ran
    assert await host.command(b"ATS0=3*") == b"\r\nERROR\r\n"
    assert await host.command(b"ATS0?") == b"\r\n003\r\n\r\nOK\r\n"
    # garbage without AT is ignored, then the modem still answers
    await host.send(bytes(range(1, 256)).replace(b"\r", b"") + b"\r")
    assert (await host.command(b"AT")).endswith(b"\r\nOK\r\n")


@pytest.mark.parametrize("name", REAL_CHIPS)
async def test_numeric_and_quiet_results(make_bed, name: str) -> None:
    host = (await make_bed(name)).host
    await host.command(b"ATE0")
    await host.send(b"ATV0\r")
    await host.exactly(b"0\r")
    await host.send(b"ATJ\r")
    await host.exactly(b"4\r")
    await host.send(b"ATI0\r")
    await host.expect(rb"\d+\r\n0\r")  # information text, then numeric OK
    await host.send(b"ATQ1\r")
    await host.send(b"ATI0\r")
    await host.send(b"ATQ0V1\r")
    await host.exactly(b"56000\r\n" if name.startswith("conexant") else b"5601\r\n")
    await host.exactly(b"\r\nOK\r\n")


@pytest.mark.parametrize("name", REAL_CHIPS)
async def test_voice_commands_need_voice_mode(make_bed, name: str) -> None:
    host = (await make_bed(name)).host
    await host.command(b"ATE0")
    for line in (b"AT+VSM=?", b"AT+VLS=1", b"AT+VTX", b"AT+VRX", b"AT+VTS=1", b"AT+VSD=128,50"):
        assert await host.command(line) == b"\r\nERROR\r\n", line
    assert await host.command(b"AT+VCID=1") == b"\r\nOK\r\n"  # caller ID works in data mode
    await host.command(b"AT+FCLASS=8")
    # streaming needs the line: on hook it is an error
    assert await host.command(b"AT+VTX") == b"\r\nERROR\r\n"
    # codecs the chip lists but the emulator cannot stream, and other rates
    chip = load_personality(name)
    for codec in chip.voice.codecs:
        expected = b"OK" if codec.format else b"ERROR"
        assert (await host.command(b"AT+VSM=%d,8000" % codec.code)).strip() == expected
    assert await host.command(b"AT+VSM=%d,7200" % CHIPS[name].codec) == b"\r\nERROR\r\n"
    assert await host.command(b"AT+VSM=77,8000") == b"\r\nERROR\r\n"
    assert await host.command(b"AT+VTR") == b"\r\nERROR\r\n"  # neither chip has +VTR


async def test_atz_restores_the_stored_profile_and_conexant_forgets_vcid(make_bed) -> None:
    cx = (await make_bed("conexant-cx93001")).host
    usr = (await make_bed("usr-5637")).host
    for host in (cx, usr):
        await host.command(b"ATE0S0=2&W")
        await host.command(b"AT+VCID=1")
        # echo after ATZ follows the saved profile (VOICE-MODEMS.md section 7)
        await host.send(b"ATZ\r")
        await host.exactly(b"\r\nOK\r\n")
        assert await host.command(b"ATS0?") == b"\r\n002\r\n\r\nOK\r\n"
        await host.command(b"AT&F")
        assert await host.command(b"ATS0?") == b"ATS0?\r\r\n000\r\n\r\nOK\r\n"
        await host.command(b"ATE0")
    assert await cx.command(b"AT+VCID?") == b"\r\n0\r\n\r\nOK\r\n"
    assert await usr.command(b"AT+VCID?") == b"\r\n1\r\n\r\nOK\r\n"


async def test_vts_zero_frequency_and_vtr(make_bed) -> None:
    usr = await make_bed("usr-5637")
    gen = await make_bed("generic-v253")
    usr_dial = await usr.incoming_call()
    await usr.host.command(b"ATE0+FCLASS=8")
    await usr.answer(usr_dial)
    assert await usr.host.command(b"AT+VTS=[933,0,120]") == b"\r\nERROR\r\n"
    assert await usr.host.command(b"AT+VTS=[933,933,12]") == b"\r\nOK\r\n"
    # full duplex on the generic chip: audio both ways, DLE ^ ends it
    await gen.voice_mode(caller_id=False)
    dial = await gen.incoming_call()
    await gen.answer(dial)
    assert await gen.host.command(b"AT+VTR") == b"\r\nCONNECT\r\n"
    gen.caller.say(tone([1000], 0.5))
    await gen.host.send(bytes([0xC0]) * 4000)
    await gen.wait(1.0)
    await gen.host.send(b"\x10^")
    stream = await gen.host.expect(rb"\x10\x03\r\nOK\r\n")
    audio, _ = unshield(stream[: -len(b"\x10\x03\r\nOK\r\n")])
    assert np.abs(codecs.decode(audio, "u8")).max() > 5000  # the caller's tone came in
    assert (gen.caller.heard == 0x4000).sum() >= 3000  # the host's audio went out


# --- ringing, caller ID and answering ------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
async def test_ring_and_caller_id_in_the_chips_format(make_bed, name: str) -> None:
    bed = await make_bed(name)
    chip = bed.chip
    await bed.voice_mode()
    dial = await bed.incoming_call()
    block = await bed.host.expect(rb"NMBR ?= ?\d+\r\n", timeout=15)
    fields = [
        b"DATE" + chip.sep + b"0304",
        b"TIME" + chip.sep + b"1230",
        b"NMBR" + chip.sep + CALLER.encode(),
    ]
    if name == "field-quirks":
        fields.insert(0, b"MESG = 030101")
    assert block == b"\r\n" + b"".join(f + b"\r\n" for f in fields)
    await bed.host.expect(re.escape(chip.voice_ring), timeout=15)  # the second ring
    await bed.host.send(b"AT+VLS=1\r")
    await bed.host.exactly(b"\r\nOK\r\n" + chip.vls1_tail)
    assert await asyncio.wait_for(dial, 15) == "answered"
    assert bed.exchange.line_state(MODEM_NUMBER) == "connected"


@pytest.mark.parametrize(
    ("name", "private", "data_mode"),
    [
        ("conexant-cx93001", b"\r\nRING\r\n\r\nDATE = 0304\r\nTIME = 1230\r\nNMBR = P\r\n", True),
        ("usr-5637", b"\r\nRING\r\n\r\nDATE=0304\r\nTIME=1230\r\nNMBR=P\r\n", True),
        (
            "field-quirks",
            b"\r\nRING\r\n\r\nMESG = 030101\r\nDATE = 0304\r\nTIME = 1230\r\n"
            b"NAME = WITHHELD       \r\nNMBR = P\r\n",
            False,
        ),
    ],
)
async def test_private_caller_id(make_bed, name: str, private: bytes, data_mode: bool) -> None:
    bed = await make_bed(name)
    secret = bed.phone("5550009", presentation="private")
    cmds = [b"ATE0", b"AT+VCID=1", *bed.chip.cid_setup]
    if not data_mode:
        cmds.insert(1, b"AT+FCLASS=8")
    for line in cmds:
        await bed.host.command(line)
    dial = asyncio.create_task(secret.dial(MODEM_NUMBER))
    assert await bed.host.expect(rb"NMBR ?= ?P\r\n", timeout=15) == private
    await secret.hang_up()
    await asyncio.gather(dial, return_exceptions=True)


async def test_conexant_caller_id_after_vcid_alone_within_its_region(make_bed) -> None:
    bed = await make_bed("conexant-cx93001")
    await bed.host.command(b"ATE0+FCLASS=8;+VCID=1")  # no AT-SCID=1, as vgetty sends it
    dial = await bed.incoming_call()
    await bed.host.expect(rb"NMBR = 5550001\r\n", timeout=15)
    await bed.host.command(b"AT+VCID=0")
    await bed.caller.hang_up()
    await asyncio.wait_for(asyncio.gather(dial, return_exceptions=True), 15)
    dial = await bed.incoming_call()
    assert b"NMBR" not in await bed.host.expect(re.escape(b"\x10R"), timeout=15)
    await bed.caller.hang_up()
    await asyncio.wait_for(asyncio.gather(dial, return_exceptions=True), 15)
    # the region must match the line's caller-ID signalling where it is known
    bed.modem.cid_scheme = "etsi-dtmf"
    await bed.host.command(b"AT+VCID=1")  # region 00 (Bell FSK): nothing decoded
    dial = await bed.incoming_call()
    assert b"NMBR" not in await bed.host.expect(re.escape(b"\x10R"), timeout=15)
    await bed.caller.hang_up()
    await asyncio.wait_for(asyncio.gather(dial, return_exceptions=True), 15)
    await bed.host.command(b"AT!4886=05")
    dial = await bed.incoming_call()
    await bed.host.expect(rb"NMBR = 5550001\r\n", timeout=15)
    await bed.answer(dial)


async def test_conexant_takes_vendor_parameters_in_a_compound_line(make_bed) -> None:
    host = (await make_bed("conexant-cx93001")).host
    await host.command(b"ATE0")
    # a Dell RD02-D400 answers this line OK (issue 11)
    assert await host.command(b"AT-SCID=1;+VCID=1;-STE=3") == b"\r\nOK\r\n"
    assert await host.command(b"AT-STE?") == b"\r\n3\r\n\r\nOK\r\n"


async def test_conexant_at_v_lists_the_active_and_stored_profiles(make_bed) -> None:
    cx = (await make_bed("conexant-cx93001")).host
    usr = (await make_bed("usr-5637")).host
    await cx.command(b"ATE0S0=2")
    listing = (await cx.command(b"AT&V")).decode()
    lines = listing.split("\r\n")
    active, stored0, stored1 = (
        lines.index(h) for h in ("ACTIVE PROFILE:", "STORED PROFILE 0:", "STORED PROFILE 1:")
    )
    assert active < stored0 < stored1
    assert lines[active + 1] == "E0 Q0 V1 X4"
    assert "S00:002" in lines[active + 2]  # the active profile shows S0=2 ...
    assert "S00:000" in lines[stored0 + 2]  # ... the stored one is not changed
    assert listing.endswith("\r\nOK\r\n")
    await usr.command(b"ATE0")
    assert await usr.command(b"AT&V") == b"\r\nERROR\r\n"  # no source for the USR's


@pytest.mark.parametrize("name", NAMES)
async def test_every_chip_takes_automatic_hang_up_control(make_bed, name: str) -> None:
    host = (await make_bed(name)).host
    await host.command(b"ATE0+FCLASS=8")
    assert await host.command(b"AT+VNH=0") == b"\r\nOK\r\n"  # V.253; vgetty sends it
    if name == "generic-v253":
        assert await host.command(b"AT+VDR=1,15") == b"\r\nOK\r\n"  # V.253 distinctive ring


async def test_usr_reports_one_press_as_slash_repeated_digit_tilde(make_bed) -> None:
    bed = await make_bed("usr-5637")
    await bed.voice_mode(caller_id=False)
    dial = await bed.incoming_call()
    await bed.answer(dial)
    await bed.caller.press("0")
    await bed.wait(0.3)
    # issue 11: a USR 5637 user's host printed "000" for one press of 0
    assert re.fullmatch(rb"\x10/(\x100)+\x10~", await bed.host.quiet(0.05))


@pytest.mark.parametrize("name", REAL_CHIPS)
async def test_auto_answer_after_s0_rings(make_bed, name: str) -> None:
    bed = await make_bed(name)
    await bed.host.command(b"ATE0")
    await bed.host.command(b"AT+FCLASS=8;S0=2")
    dial = asyncio.create_task(bed.caller.dial(MODEM_NUMBER))
    ring = re.escape(bed.chip.voice_ring)
    await bed.host.expect(ring + rb".*" + ring, timeout=20)
    await bed.host.expect(rb"\r\n(VCON|OK)\r\n", timeout=10)
    assert await asyncio.wait_for(dial, 15) == "answered"
    assert await bed.host.command(b"ATS1?") == b"\r\n002\r\n\r\nOK\r\n"


async def test_ata_in_voice_mode_and_data_mode(make_bed) -> None:
    bed = await make_bed("usr-5637")
    await bed.host.command(b"ATE0+FCLASS=8")
    dial = await bed.incoming_call()
    assert await bed.host.command(b"ATA") == b"\r\nVCON\r\n"
    assert await asyncio.wait_for(dial, 15) == "answered"
    await bed.caller.hang_up()
    await bed.host.command(b"ATH+FCLASS=0;S7=3")
    # data mode: no data carrier is emulated, so ATA gives up after S7
    dial = asyncio.create_task(bed.caller.dial(MODEM_NUMBER))
    await bed.host.expect(rb"\r\nRING\r\n", timeout=15)
    assert await bed.host.command(b"ATA", timeout=15) == b"\r\nNO CARRIER\r\n"
    await asyncio.wait_for(dial, 15)
    assert bed.exchange.line_state(MODEM_NUMBER) == "idle"


# --- audio ---------------------------------------------------------------------------------------


def _codec_cases() -> list[tuple[str, int, str]]:
    cases = []
    for name in NAMES:
        for codec in load_personality(name).voice.codecs:
            if codec.format and (name in REAL_CHIPS or codec.format == "u8"):
                cases.append((name, codec.code, codec.format))
    return cases


@pytest.mark.parametrize(("name", "code", "fmt"), _codec_cases())
async def test_vtx_audio_reaches_the_phone_intact(make_bed, name: str, code: int, fmt: str) -> None:
    bed = await make_bed(name)
    await bed.voice_mode(caller_id=False)
    await bed.host.command(b"AT+VSM=%d,8000" % code)
    dial = await bed.incoming_call()
    await bed.answer(dial)
    # every byte value, 0x10 included, as far as the codec round-trips it
    if fmt == "s16le":
        raw = np.arange(-32768, 32768, 7, dtype=np.int16)
        audio = raw.astype("<i2").tobytes()
    else:
        audio = codecs.encode(codecs.decode(bytes(range(256)) * 12, fmt), fmt)
    assert audio.count(0x10) > 0
    wire = audio.replace(b"\x10", b"\x10\x10")
    if bed.chip.dle_sub:
        wire = wire.replace(b"\x10\x10\x10\x10", b"\x10\x1a")
    assert await bed.host.command(b"AT+VTX") == b"\r\nCONNECT\r\n"
    mark = len(bed.caller.heard)
    await bed.host.send(wire + b"\x10\x03")
    end = await bed.host.expect(rb"OK\r\n", timeout=15)
    assert end.endswith(bed.chip.vtx_end)
    heard = codecs.encode(bed.caller.heard[mark:], fmt)
    assert audio in heard
    assert bed.exchange.line_state(MODEM_NUMBER) == "connected"


@pytest.mark.parametrize("name", NAMES)
async def test_vrx_delivers_audio_and_keys_in_the_chips_framing(make_bed, name: str) -> None:
    bed = await make_bed(name)
    chip = bed.chip
    await bed.voice_mode(caller_id=False)
    await bed.host.command(b"AT+VSM=%d,8000" % chip.codec)
    dial = await bed.incoming_call()
    await bed.answer(dial)
    assert await bed.host.command(b"AT+VRX") == b"\r\nCONNECT\r\n"
    said = codecs.decode(bytes(range(256)) * 8, "u8")
    bed.caller.say(said)
    await bed.wait(0.5)
    await bed.caller.press("1590")
    await bed.wait(0.3)
    await bed.host.send(b"\x10!")
    stream = await bed.host.expect(rb"\x10\x03\r\nOK\r\n", timeout=15)
    audio, events = unshield(stream[: -len(b"\r\nOK\r\n")], chip.dle_sub)
    assert events[-1][1] == "\x03"
    assert bytes(range(256)) * 8 in audio  # what the phone said, byte for byte
    codes = "".join(code for _, code in events[:-1] if code != "u")
    if not chip.vrx_events:
        # section 3: nothing reported while recording; the keys are in the audio
        assert codes == ""
        heard = DtmfDetector().feed(codecs.decode(audio, "u8"))
        presses = [e.key for e in heard if e.kind == "down"]
    elif chip.wrapped:
        presses = re.findall(r"/(\d)\1*~", codes)
        assert re.fullmatch(r"(/(\d)\2+~)+", codes), codes  # digits repeated while held
    else:
        presses = list(codes)
    assert "".join(presses) == "1590"


async def test_conexant_reports_one_press_as_slash_repeated_digit_tilde(make_bed) -> None:
    bed = await make_bed("conexant-cx93001")
    await bed.voice_mode(caller_id=False)
    dial = await bed.incoming_call()
    await bed.answer(dial)
    await bed.caller.press("0")
    await bed.wait(0.3)
    # in voice command mode too, off hook: VOICE-MODEMS.md section 3 "/000~"
    assert await bed.host.quiet(0.05) == b"\x10/\x100\x100\x100\x10~"


@pytest.mark.parametrize("name", REAL_CHIPS)
async def test_dle_can_cuts_playback_at_once(make_bed, name: str) -> None:
    bed = await make_bed(name)
    await bed.voice_mode(caller_id=False)
    dial = await bed.incoming_call()
    await bed.answer(dial)
    await bed.host.command(b"AT+VTX")
    mark = len(bed.caller.heard)
    sent = 8000  # one second of 8-bit audio at 0xC0 (a loud constant)
    await bed.host.send(bytes([0xC0]) * sent)
    await until(lambda: (bed.caller.heard[mark:] == 0x4000).any())
    await bed.host.send(b"\x10\x18\x10\x03")
    await bed.host.expect(rb"OK\r\n", timeout=15)
    played = int((bed.caller.heard[mark:] == 0x4000).sum())
    after = len(bed.caller.heard)
    await bed.wait(1.0)
    assert not (bed.caller.heard[after:] == 0x4000).any()  # nothing after the final OK
    # the transmit buffer's content was discarded, not played out
    assert played <= sent - load_personality(name).voice.tx_buffer // 2


@pytest.mark.parametrize("name", REAL_CHIPS)
async def test_vts_digits_are_heard_by_the_far_phone(make_bed, name: str) -> None:
    bed = await make_bed(name)
    await bed.voice_mode(caller_id=False)
    dial = await bed.incoming_call()
    await bed.answer(dial)
    mark = len(bed.caller.heard)
    assert await bed.host.command(b"AT+VTD=10;+VTS=1,5,{2,20},[,,20],1,#,A", timeout=15) == (
        b"\r\nOK\r\n"
    )
    keys = [e.key for e in DtmfDetector().feed(bed.caller.heard[mark:]) if e.kind == "down"]
    assert "".join(keys) == "1521#A"


# --- dialling out ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
async def test_dialling_another_line(make_bed, name: str) -> None:
    bed = await make_bed(name)
    await bed.voice_mode(caller_id=False)
    bank = bed.phone("2222")
    await bed.host.send(b"ATDT2222;\r")
    assert await bank.wait_for_ring(30) is not None
    await bank.wait(2.0)
    await bank.answer()
    await bed.host.expect(rb"\r\n" + bed.chip.answered + rb"\r\n", timeout=20)
    assert bed.exchange.line_state("2222") == "connected"
    mark = len(bank.heard)
    await bed.host.command(b"AT+VTD=10;+VTS=4,2", timeout=15)
    keys = [e.key for e in DtmfDetector().feed(bank.heard[mark:]) if e.kind == "down"]
    assert keys == ["4", "2"]


async def test_dial_tone_and_polarity_reversal_events(make_bed) -> None:
    bed = await make_bed("generic-v253", TonePlan(polarity_reversal_on_answer=True))
    await bed.voice_mode(caller_id=False)
    # off hook on an idle line: continuous 425 Hz is reported as dial tone
    assert await bed.host.command(b"AT+VLS=1") == b"\r\nOK\r\n"
    assert await bed.host.expect(rb"\x10.", timeout=10) == b"\x10d"
    await bed.host.command(b"ATH")
    # answer supervision by polarity reversal ends call progress at once
    bank = bed.phone("2222")
    await bed.host.send(b"ATD2222;\r")
    assert await bank.wait_for_ring(30) is not None
    await bank.answer()
    answered_at = bed.clock.now()
    # ringback bursts (DLE r) while it rang, then the reversal (DLE L) and OK
    assert re.fullmatch(rb"(\x10r)*\x10L\r\nOK\r\n", await bed.host.expect(FINAL, timeout=10))
    assert bed.clock.now() - answered_at < 1.0  # no +VRA wait


async def test_data_mode_dial_finds_no_carrier(make_bed) -> None:
    bed = await make_bed("usr-5637")
    await bed.host.command(b"ATE0")
    bank = bed.phone("2222")
    await bed.host.send(b"ATDT2222\r")
    assert await bank.wait_for_ring(30) is not None
    await bank.answer()
    assert await bed.host.expect(FINAL, timeout=20) == b"\r\nNO CARRIER\r\n"
    assert bed.exchange.line_state(MODEM_NUMBER) == "idle"
    await bank.hang_up()
    # ATD...; in data mode returns to command state once dialled, line kept
    assert (await bed.host.command(b"ATD2222;", timeout=20)) == b"\r\nOK\r\n"
    assert bed.exchange.line_state(MODEM_NUMBER) == "ringback"


@pytest.mark.parametrize("name", NAMES)
async def test_busy_no_answer_and_no_dial_tone(make_bed, name: str) -> None:
    bed = await make_bed(name)
    await bed.voice_mode(caller_id=False)
    engaged = bed.phone("3333")
    engaged.lift()
    bed.phone("4444")
    response = await bed.host.command(b"ATD3333;", timeout=20)
    assert response.endswith(b"\r\nBUSY\r\n")
    assert bed.exchange.line_state(MODEM_NUMBER) == "idle"
    response = await bed.host.command(b"ATS7=12D4444;", timeout=30)
    assert response.endswith(b"\r\nNO ANSWER\r\n")
    # congestion counts as busy; chips that report busy in command state say so first
    response = await bed.host.command(b"ATD9999;", timeout=20)
    assert re.fullmatch(rb"(\x10b)*\r\nBUSY\r\n", response)
    # off hook in a call there is no dial tone to dial on
    dial = await bed.incoming_call()
    await bed.answer(dial)
    response = await bed.host.command(b"ATD2222;", timeout=20)
    assert response == b"\r\n" + bed.chip.no_dialtone + b"\r\n"


async def test_any_byte_aborts_a_dial(make_bed) -> None:
    bed = await make_bed("usr-5637")
    await bed.voice_mode(caller_id=False)
    bed.phone("4444")
    await bed.host.send(b"ATD4444;\r")
    await until(lambda: bed.exchange.line_state("4444") == "ringing")
    await bed.host.send(b"x")
    assert await bed.host.expect(FINAL) == b"\r\nNO CARRIER\r\n"
    assert bed.exchange.line_state(MODEM_NUMBER) == "idle"


# --- the far end hangs up; silence; overrun -----------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
async def test_remote_hang_up_events(make_bed, name: str) -> None:
    bed = await make_bed(name)
    await bed.voice_mode(caller_id=False)
    dial = await bed.incoming_call()
    await bed.answer(dial)
    await bed.host.command(b"AT+VRX")
    await bed.wait(0.5)
    await bed.caller.hang_up()
    await bed.wait(4.0)
    await bed.host.send(b"\x10!")
    stream = await bed.host.expect(rb"\x10\x03\r\nOK\r\n", timeout=15)
    _, events = unshield(stream, bed.chip.dle_sub)
    codes = "".join(code for _, code in events if code not in "\x03sq")
    if bed.chip.hangup:
        assert re.search(bed.chip.hangup.decode().replace("\\x10", ""), codes), codes
    else:
        assert codes == ""  # nothing: the host must notice by itself
    assert bed.exchange.line_state(MODEM_NUMBER) == "busy"
    assert await bed.host.command(b"ATH") == b"\r\nOK\r\n"
    assert bed.exchange.line_state(MODEM_NUMBER) == "idle"


@pytest.mark.parametrize("name", ["usr-5637", "conexant-cx93001"])
async def test_silence_detection_honoured_or_ignored(make_bed, name: str) -> None:
    bed = await make_bed(name)
    await bed.voice_mode(caller_id=False)
    await bed.host.command(b"AT+VSD=128,20")  # 2 s
    dial = await bed.incoming_call()
    await bed.answer(dial)
    await bed.host.command(b"AT+VRX")
    await bed.wait(3.0)
    bed.caller.say(tone([800], 1.0))
    await bed.wait(3.5)
    await bed.host.send(b"\x10!")
    stream = await bed.host.expect(rb"\x10\x03\r\nOK\r\n", timeout=15)
    codes = "".join(code for _, code in unshield(stream)[1] if code in "sq")
    assert codes == ("sq" if bed.chip.silence else "")


@pytest.mark.parametrize("name", REAL_CHIPS)
async def test_a_host_that_stops_reading_gets_an_overrun(make_bed, name: str) -> None:
    bed = await make_bed(name)
    await bed.voice_mode(caller_id=False)
    dial = await bed.incoming_call()
    await bed.answer(dial)
    await bed.host.command(b"AT+VRX")
    bed.host.pause()
    await bed.wait(6.0)  # ~48 KB of audio: more than the pty and the modem hold
    bed.host.resume()
    await bed.wait(0.5)
    await bed.host.send(b"\x10!")
    stream = await bed.host.expect(rb"\x10\x03\r\nOK\r\n", timeout=15)
    audio, events = unshield(stream)
    assert [code for _, code in events].count("o") == 1
    assert len(audio) < 6.5 * 8000


@pytest.mark.parametrize("name", REAL_CHIPS)
async def test_underrun_is_reported_once_and_playback_goes_on(make_bed, name: str) -> None:
    bed = await make_bed(name)
    await bed.voice_mode(caller_id=False)
    dial = await bed.incoming_call()
    await bed.answer(dial)
    await bed.host.command(b"AT+VTX")
    await bed.host.send(bytes([0x90]) * 800)
    await bed.wait(1.0)
    assert bed.modem.mode == "tx"
    await bed.host.send(bytes([0x90]) * 800 + b"\x10\x03")
    stream = await bed.host.expect(rb"OK\r\n", timeout=15)
    stray = load_personality(name).voice.stray_underrun
    assert stream.count(b"\x10u") == (2 if stray else 1)


@pytest.mark.parametrize("name", REAL_CHIPS)
async def test_commands_while_streaming_are_audio(make_bed, name: str) -> None:
    bed = await make_bed(name)
    await bed.voice_mode(caller_id=False)
    dial = await bed.incoming_call()
    await bed.answer(dial)
    await bed.host.command(b"AT+VTX")
    mark = len(bed.caller.heard)
    await bed.host.send(b"ATH\rATZ\r+++" + b"\x10\x03")
    await bed.host.expect(rb"OK\r\n", timeout=15)
    assert bed.exchange.line_state(MODEM_NUMBER) == "connected"
    heard = codecs.encode(bed.caller.heard[mark:], "u8")
    assert b"ATH\rATZ\r+++" in heard
