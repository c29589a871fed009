"""The AT channel: the pure parser (property tests) and the engine against a scripted fake."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon1521.clock import LoopClock
from daemon1521.modem.at import (
    AtEngine,
    CallerIdLine,
    Echo,
    FinalResult,
    InfoLine,
    ParserItem,
    PortDown,
    ResponseParser,
    Ring,
    Unsolicited,
    verbose_setting,
)
from daemon1521.modem.callerid import CallerInfo
from daemon1521.modem.dle import ABORT_RX, END_TX, DleDecoder, DleEvent, shield
from daemon1521.modem.errors import (
    AtError,
    AtTimeout,
    PortClosed,
    StreamError,
    redact_command,
)
from daemon1521.modem.transport import open_port
from tests.test_transport import PtyPeer

EVERY_BYTE = bytes(range(256))

# -- parser ----------------------------------------------------------------------


def parse(data: bytes, cuts: list[int] = (), **options: object) -> list[ParserItem]:
    parser = ResponseParser(**options)  # type: ignore[arg-type]
    for command in COMMANDS:
        parser.expect_echo(command)
    items: list[ParserItem] = []
    start = 0
    for cut in [*sorted(min(c, len(data)) for c in cuts), len(data)]:
        items += parser.feed(data[start:cut])
        start = cut
    return items


COMMANDS = ("ATI3", "AT+VSM=?", "at+fclass?")


def test_classification() -> None:
    items = parse(
        b"ATI3\r\r\nCX93001-EIS_V0.2002-V92\r\n\r\nOK\r\n"
        b"\r\nRING\r\n\r\nDATE = 1015\r\nNMBR=0912\r\n\r\nRING2\r\n\r\nRINGB\r\n"
        b"\r\nDRON=5\r\n\r\nCWON\r\n\r\nRINGING\r\n"
        b"\r\nno dial tone\r\n\r\nNO DIALTONE\r\n\r\nCONNECT 9600\r\n\r\n+CME ERROR: 3\r\n"
        b"\x10R\x10b"
    )
    assert items == [
        Echo("ATI3"),
        InfoLine("CX93001-EIS_V0.2002-V92"),
        FinalResult("OK", "OK"),
        Ring("RING"),
        CallerIdLine("DATE", "1015", "DATE = 1015"),
        CallerIdLine("NMBR", "0912", "NMBR=0912"),
        Ring("RING2"),
        Ring("RINGB"),
        Unsolicited("DRON=5"),
        Unsolicited("CWON"),
        Unsolicited("RINGING"),
        FinalResult("NO DIALTONE", "no dial tone"),
        FinalResult("NO DIALTONE", "NO DIALTONE"),
        FinalResult("CONNECT", "CONNECT 9600"),
        FinalResult("ERROR", "+CME ERROR: 3"),
        DleEvent("R"),
        DleEvent("b"),
    ]
    assert Ring("RING2").cadence == "2" and Ring("RINGB").cadence == "B"
    assert Ring("RING").cadence is None


def test_echo_only_for_commands_sent() -> None:
    parser = ResponseParser()
    assert parser.feed(b"ATI3\r") == [InfoLine("ATI3")]
    parser.expect_echo("ATI3")
    assert parser.feed(b"ati3\r\n") == [Echo("ati3")]


def test_numeric_results_only_when_asked() -> None:
    assert parse(b"8\r\n0\r") == [InfoLine("8"), InfoLine("0")]
    parser = ResponseParser(numeric_results=True)
    assert parser.feed(b"0\r4\r2\r") == [FinalResult("OK", "0"), FinalResult("ERROR", "4")]
    assert parser.holding  # "2" + CR: a ring, or information text if LF follows
    assert parser.feed(b"7\r") == [Ring("2")]
    assert parser.flush() == [FinalResult("BUSY", "7")]
    assert parser.flush() == []


def test_numeric_mode_tells_text_from_results_by_the_lf() -> None:
    """V.250: ATV0 results end with CR alone; information text with CR LF."""
    parser = ResponseParser(numeric_results=True)
    assert parser.feed(b"8\r") == []
    assert parser.feed(b"\n0\r") == [InfoLine("8")]
    assert parser.flush() == [FinalResult("OK", "0")]
    assert parser.feed(b"56000\r\n") == [InfoLine("56000")]
    parser.arm_data_mode()
    assert parser.feed(b"1\r\x80\x10\x10") == [FinalResult("CONNECT", "1"), b"\x80\x10"]


@pytest.mark.parametrize(
    ("command", "verbose"),
    [
        ("ATV0", False),
        ("ATE0V1", True),
        ("ATE1V0Q0", False),
        ("ATZ", True),
        ("AT&F", True),
        ("ATS0=0V0", False),
        ("AT+VSM=?", None),
        ("AT+VTS=1,2,3", None),
        ("ATDT0215V0;", None),
        ("ATI3", None),
    ],
)
def test_verbose_setting(command: str, verbose: bool | None) -> None:
    assert verbose_setting(command) == verbose


def test_noise_inside_lines_and_very_long_lines() -> None:
    assert parse(b"\r\nO\xff\x00K\r\n") == [FinalResult("OK", "OK")]
    items = parse(b"#" * 1300 + b"\r\nOK\r\n")
    assert [type(i) for i in items] == [InfoLine, InfoLine, InfoLine, FinalResult]


def test_dle_x_in_command_mode_keeps_lines() -> None:
    items = parse(b"\x10XNMBR=0912\r\n\x10.")
    assert items == [DleEvent("X"), CallerIdLine("NMBR", "0912", "NMBR=0912"), DleEvent(".")]


def test_data_mode_after_connect_and_back_at_etx() -> None:
    audio = EVERY_BYTE * 4
    wire = (
        b"AT+VRX\r\r\nCONNECT\r\n"
        + shield(audio[:300])
        + b"\x105"
        + shield(audio[300:])
        + b"\x10\x03\r\nOK\r\n"
    )
    expected = [
        FinalResult("CONNECT", "CONNECT"),
        audio[:300],
        DleEvent("5"),
        audio[300:],
        DleEvent("ETX"),
        FinalResult("OK", "OK"),
    ]
    for cut in range(0, len(wire) + 1, 7):
        parser = ResponseParser()
        parser.expect_echo("AT+VRX")
        parser.arm_data_mode()
        items = parser.feed(wire[:cut]) + parser.feed(wire[cut:])
        assert [i for i in merge_audio(items) if not isinstance(i, Echo)] == expected
        assert not parser.in_data


def test_connect_ended_by_cr_alone_keeps_a_leading_lf_of_audio_only_once() -> None:
    parser = ResponseParser()
    parser.arm_data_mode()
    assert parser.feed(b"\r\nCONNECT\r") == [FinalResult("CONNECT", "CONNECT")]
    assert parser.feed(b"\n\n\x80") == [b"\n\x80"]


def test_disarmed_by_other_finals() -> None:
    parser = ResponseParser()
    parser.arm_data_mode()
    parser.feed(b"\r\nERROR\r\n")
    assert parser.feed(b"\r\nCONNECT\r\nOK\r\n") == [
        FinalResult("CONNECT", "CONNECT"),
        FinalResult("OK", "OK"),
    ]


def merge_audio(items: list[ParserItem]) -> list[ParserItem]:
    out: list[ParserItem] = []
    for item in items:
        if isinstance(item, bytes) and out and isinstance(out[-1], bytes):
            out[-1] = out[-1] + item
        else:
            out.append(item)
    return out


# A transcript: pieces of modem output with the item each must become.
FINALS = ["OK", "ERROR", "NO CARRIER", "BUSY", "NO ANSWER", "CONNECT", "VCON", "NO DIALTONE"]
INFOS = [
    "U.S. Robotics 56K FAX USB V1.2.23",
    "CX93001-EIS_V0.2002-V92",
    '128,"8-BIT LINEAR",(7200,8000,11025)',
    "56000",
    "+GMI: CONEXANT",
]
ENDINGS = [("\r\n", "\r\n"), ("", "\r\n"), ("\r", "\r"), ("", "\n"), ("\r\n\r\n", "\r\n")]


@dataclass
class Piece:
    wire: bytes
    expected: ParserItem


def line_piece(text: str, item: ParserItem, ending: int, upper: bool) -> Piece:
    before, after = ENDINGS[ending]
    shown = text if upper else text.lower()
    if isinstance(item, FinalResult):
        item = FinalResult(item.code, shown)
    elif isinstance(item, Echo):
        item = Echo(shown)
    return Piece((before + shown + after).encode(), item)


pieces = st.one_of(
    st.builds(
        lambda t, e, u: line_piece(t, FinalResult(t, t), e, u),
        st.sampled_from(FINALS),
        st.integers(0, len(ENDINGS) - 1),
        st.booleans(),
    ),
    st.builds(
        lambda t, e: line_piece(t, InfoLine(t), e, True),
        st.sampled_from(INFOS),
        st.integers(0, len(ENDINGS) - 1),
    ),
    st.builds(
        lambda t, e: line_piece(t, Ring(t), e, True),
        st.sampled_from(["RING", "RING1", "RINGA"]),
        st.integers(0, len(ENDINGS) - 1),
    ),
    st.builds(
        lambda e: line_piece(
            "NMBR = 09121234567", CallerIdLine("NMBR", "09121234567", "NMBR = 09121234567"), e, True
        ),
        st.integers(0, len(ENDINGS) - 1),
    ),
    st.builds(
        lambda c, crlf: Piece((c + ("\r\n" if crlf else "\r")).encode(), Echo(c)),
        st.sampled_from(COMMANDS),
        st.booleans(),
    ),
    st.sampled_from([Piece(b"\x10R", DleEvent("R")), Piece(b"\x10b", DleEvent("b"))]),
)


def noisy(piece: Piece, rng: random.Random) -> Piece:
    """Sprinkle line noise (high bytes, NULs) inside a line: it must not change anything."""
    if isinstance(piece.expected, DleEvent):
        return piece
    wire = bytearray(piece.wire)
    for _ in range(rng.randint(0, 3)):
        wire.insert(rng.randint(0, len(wire)), rng.choice([0x00, 0x7F, 0x80, 0xFF, 0xF8]))
    return Piece(bytes(wire), piece.expected)


@settings(max_examples=300, deadline=None)
@given(
    transcript=st.lists(pieces, max_size=25),
    cuts=st.lists(st.integers(0, 2000), max_size=10),
    seed=st.integers(0, 2**16),
    garbage_lines=st.booleans(),
)
def test_any_split_any_framing_with_noise(
    transcript: list[Piece], cuts: list[int], seed: int, garbage_lines: bool
) -> None:
    rng = random.Random(seed)
    wire = bytearray()
    expected: list[ParserItem] = []
    for piece in transcript:
        piece = noisy(piece, rng)
        if garbage_lines and rng.random() < 0.3:
            junk = "".join(rng.choice("#$%&~^") for _ in range(rng.randint(1, 12)))
            wire += b"\r\n" + junk.encode() + b"\r\n"
            expected.append(InfoLine(junk))
        wire += piece.wire
        expected.append(piece.expected)
    # every line piece ends with its own line ending, so the items come out in
    # transcript order, whatever the split
    assert parse(bytes(wire), cuts) == expected


@settings(max_examples=300, deadline=None)
@given(garbage=st.binary(max_size=700), armed=st.booleans(), numeric=st.booleans())
def test_random_bytes_never_raise(garbage: bytes, armed: bool, numeric: bool) -> None:
    parser = ResponseParser(numeric_results=numeric)
    if armed:
        parser.arm_data_mode()
    for item in parser.feed(garbage):
        assert isinstance(
            item,
            FinalResult | InfoLine | Echo | Ring | Unsolicited | CallerIdLine | DleEvent | bytes,
        )


@settings(max_examples=200, deadline=None)
@given(audio=st.binary(max_size=400), cuts=st.lists(st.integers(0, 900), max_size=6))
def test_stream_with_any_audio_and_split(audio: bytes, cuts: list[int]) -> None:
    wire = b"\r\nCONNECT\r\n" + shield(audio) + b"\x10\x03\r\nOK\r\n"

    def run(points: list[int]) -> list[ParserItem]:
        parser = ResponseParser()
        parser.arm_data_mode()
        items: list[ParserItem] = []
        start = 0
        for cut in [*sorted(min(c, len(wire)) for c in points), len(wire)]:
            items += parser.feed(wire[start:cut])
            start = cut
        return merge_audio(items)

    expected: list[ParserItem] = [FinalResult("CONNECT", "CONNECT")]
    if audio:
        expected.append(audio)
    expected += [DleEvent("ETX"), FinalResult("OK", "OK")]
    assert run(cuts) == expected


# -- engine against a scripted fake modem ---------------------------------------------

Reply = bytes | str | float  # float: pause, in seconds


class FakeModem:
    """A scripted modem on the far side of a pty; handles one command at a time."""

    def __init__(self, peer: PtyPeer, *, echo: bool = True) -> None:
        self.peer = peer
        self.echo = echo
        self.commands: list[str] = []
        self.handlers: dict[str, tuple[Reply, ...] | Callable[[FakeModem], Awaitable[None]]] = {}
        self._buffer = bytearray()
        self._more = asyncio.Event()
        self._eof = False
        self._pump = asyncio.create_task(self._read())
        self._task = asyncio.create_task(self._serve())

    def on(self, command: str, *replies: Reply) -> None:
        self.handlers[command.upper()] = replies

    def on_call(self, command: str, handler: Callable[[FakeModem], Awaitable[None]]) -> None:
        self.handlers[command.upper()] = handler

    def send(self, data: bytes | str) -> None:
        self.peer.write(data.encode() if isinstance(data, str) else data)

    async def _read(self) -> None:
        while True:
            data = await self.peer.read_some()
            if not data:
                self._eof = True
                self._more.set()
                return
            self._buffer += data
            self._more.set()

    async def _wait_more(self) -> None:
        self._more.clear()
        if self._eof:
            raise EOFError
        await self._more.wait()

    async def _serve(self) -> None:
        try:
            while True:
                end = self._buffer.find(b"\r")
                if end < 0:
                    await self._wait_more()
                    continue
                line = self._buffer[:end].decode("latin-1")
                del self._buffer[: end + 1]
                if self.echo:
                    self.send(line + "\r")
                self.commands.append(line)
                await self._handle(line.strip())
        except EOFError:
            return

    async def _handle(self, line: str) -> None:
        handler = self.handlers.get(line.upper(), ("\r\nOK\r\n",))
        if callable(handler):
            await handler(self)
            return
        for reply in handler:
            if isinstance(reply, float):
                await asyncio.sleep(reply)
            else:
                self.send(reply)

    async def read_stream(self) -> tuple[bytes, list[str]]:
        """Host-to-modem data until DLE ETX / DLE ! / DLE ^: unshielded audio and codes."""
        decoder = DleDecoder(dle_sub=False)
        audio = bytearray()
        codes: list[str] = []
        while True:
            chunk = bytes(self._buffer)
            self._buffer.clear()
            for item in decoder.feed(chunk):
                if isinstance(item, bytes):
                    audio += item
                    continue
                codes.append(item.code)
                if item.code in ("ETX", "!", "^"):
                    return bytes(audio), codes
            await self._wait_more()

    async def stop(self) -> None:
        for task in (self._task, self._pump):
            task.cancel()
        await asyncio.gather(self._task, self._pump, return_exceptions=True)


@dataclass
class Rig:
    peer: PtyPeer
    modem: FakeModem
    engine: AtEngine


SCALE = 10.0  # the engine clock's speed in these tests: timeouts below are line seconds


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    peer = PtyPeer()
    port = await open_port(peer.path)
    peer.release_slave()
    modem = FakeModem(peer)
    engine = AtEngine(port, clock=LoopClock(SCALE))
    await engine.start()
    try:
        yield Rig(peer, modem, engine)
    finally:
        await engine.close()
        await modem.stop()
        await port.close()
        peer.close()


async def next_event(engine: AtEngine, timeout: float = 2.0) -> object:
    return await asyncio.wait_for(engine.events.get(), timeout)


async def test_command_with_information_lines(rig: Rig) -> None:
    rig.modem.on("ATI3", "\r\nCX93001-EIS_V0.2002-V92\r\n\r\nOK\r\n")
    response = await rig.engine.command("ATI3")
    assert response.final == "OK"
    assert response.lines == ["CX93001-EIS_V0.2002-V92"]
    assert rig.modem.commands == ["ATI3"]


@pytest.mark.parametrize("echo", [True, False])
async def test_echo_state_does_not_matter(rig: Rig, echo: bool) -> None:
    rig.modem.echo = echo
    rig.modem.on("AT+FCLASS?", "\r\n8\r\nOK\r\n")  # Conexant: no blank line before OK
    assert (await rig.engine.command("AT+FCLASS?")).lines == ["8"]


async def test_lower_case_and_bare_lf(rig: Rig) -> None:
    rig.modem.on("AT+VSM=?", '128,"8-bit linear",(8000)\nok\n')
    response = await rig.engine.command("AT+VSM=?")
    assert response.final == "OK" and response.lines == ['128,"8-bit linear",(8000)']


async def test_error_results(rig: Rig) -> None:
    rig.modem.on("AT+VTS=1,2,3,4", "\r\nERROR\r\n")
    with pytest.raises(AtError) as caught:
        await rig.engine.command("AT+VTS=1,2,3,4")
    assert caught.value.final == "ERROR"
    assert "1,2,3,4" not in str(caught.value)  # DTMF may be a PIN: never in messages
    rig.modem.on("ATDT0215;", "\r\nNO DIAL TONE\r\n")
    response = await rig.engine.command("ATDT0215;", expect={"OK", "NO DIALTONE"})
    assert response.final == "NO DIALTONE" and response.text == "NO DIAL TONE"
    rig.modem.on("ATDT0216;", "\r\nBUSY\r\n")
    assert (await rig.engine.command("ATDT0216;", check=False)).final == "BUSY"


async def test_commands_run_one_at_a_time(rig: Rig) -> None:
    rig.modem.on("ATI3", 0.02, "\r\nMODEL\r\n\r\nOK\r\n")
    rig.modem.on("AT+GMI", "\r\n+GMI: MAKER\r\n\r\nOK\r\n")
    first, second = await asyncio.gather(rig.engine.command("ATI3"), rig.engine.command("AT+GMI"))
    assert first.lines == ["MODEL"] and second.lines == ["+GMI: MAKER"]


async def test_unsolicited_lines_during_a_command(rig: Rig) -> None:
    rig.modem.on(
        "ATI3",
        "\r\nRING\r\n\r\nDATE=0117\r\nTIME=1230\r\nNMBR=09121234567\r\n\r\nMODEL\r\n",
        0.01,
        "\r\nRING\r\n\r\nOK\r\n",
    )
    response = await rig.engine.command("ATI3")
    assert response.lines == ["MODEL"]
    assert await next_event(rig.engine) == Ring("RING")
    info = await next_event(rig.engine)
    assert isinstance(info, CallerInfo) and info.number == "09121234567"
    assert info.date == "0117" and info.time == "1230"
    assert await next_event(rig.engine) == Ring("RING")


async def test_caller_id_closed_by_quiet_and_dle_ring(rig: Rig) -> None:
    rig.modem.send("\r\nNAME=ALI         \r\nNMBR = P\r\n")
    info = await next_event(rig.engine)
    assert isinstance(info, CallerInfo) and info.status == "private" and info.name == "ALI"
    rig.modem.send("\x10R\x10b")
    assert await next_event(rig.engine) == Ring("DLE R", via_dle=True)
    assert await next_event(rig.engine) == DleEvent("b")
    rig.modem.send("\r\nDRON=5\r\n\r\nSOMETHING ELSE\r\n")
    assert await next_event(rig.engine) == Unsolicited("DRON=5")
    assert await next_event(rig.engine) == Unsolicited("SOMETHING ELSE")


async def test_timeout_then_late_final_is_not_taken(rig: Rig) -> None:
    rig.modem.on("ATSLOW", 0.3, "\r\nERROR\r\n")
    rig.modem.on("ATI3", "\r\nREAL MODEL\r\n\r\nOK\r\n")
    with pytest.raises(AtTimeout):
        await rig.engine.command("ATSLOW", timeout=1.0)  # 0.1 s at SCALE
    response = await rig.engine.command("ATI3")
    assert response.final == "OK" and response.lines == ["REAL MODEL"]
    assert rig.modem.commands[0] == "ATSLOW" and rig.modem.commands[-1] == "ATI3"
    assert "AT" in rig.modem.commands  # the resync probe


async def test_silent_modem_times_out_on_the_scaled_clock(rig: Rig) -> None:
    rig.modem.on("ATX", 5.0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(AtTimeout) as caught:
        await rig.engine.command("ATX", timeout=2.0)
    assert loop.time() - started < 1.0  # 2 modem seconds are 0.2 s at SCALE
    assert caught.value.timeout == 2.0


async def test_resync_gives_up_on_a_dead_modem(rig: Rig) -> None:
    async def dead(modem: FakeModem) -> None:
        modem.handlers.clear()
        modem.on("AT", 30.0)

    rig.modem.on_call("ATDEAD", dead)
    with pytest.raises(AtTimeout):
        await rig.engine.command("ATDEAD", timeout=0.5)
    with pytest.raises(AtTimeout):
        await rig.engine.command("ATI3")


async def test_numeric_results_follow_atv0(rig: Rig) -> None:
    rig.modem.on("ATV0", "0\r")
    rig.modem.on("AT+FCLASS?", "8\r\n0\r")
    rig.modem.on("ATBAD", "4\r")
    await rig.engine.command("ATV0")
    assert rig.engine.numeric_results
    assert (await rig.engine.command("AT+FCLASS?")).lines == ["8"]
    with pytest.raises(AtError):
        await rig.engine.command("ATBAD")
    rig.modem.on("ATV1", "\r\nOK\r\n")
    await rig.engine.command("ATV1")
    assert not rig.engine.numeric_results


async def test_receive_stream(rig: Rig) -> None:
    audio = EVERY_BYTE * 8

    async def vrx(modem: FakeModem) -> None:
        modem.send(b"\r\nCONNECT\r\n\x10u" + shield(audio[:700]) + b"\x10/\x105\x10~")
        modem.send(shield(audio[700:]))
        _, codes = await modem.read_stream()
        assert codes == ["!"]
        modem.send(b"\x80\x80\x10\x03\r\nOK\r\n")

    rig.modem.on_call("AT+VRX", vrx)
    received = bytearray()
    events: list[DleEvent] = []
    async with rig.engine.stream("AT+VRX", receive=True) as stream:
        while len(received) < len(audio):
            item = await asyncio.wait_for(stream.read(), 2)
            if isinstance(item, bytes):
                received += item
            else:
                assert isinstance(item, DleEvent)
                events.append(item)
        response = await stream.finish()
        tail = [item async for item in stream]
    assert bytes(received) == audio
    assert events == [DleEvent("u"), DleEvent("/"), DleEvent("5"), DleEvent("~")]
    assert response.final == "OK"
    assert tail == [b"\x80\x80", DleEvent("ETX")]
    assert stream.ended
    rig.modem.on("ATI3", "\r\nAFTER\r\n\r\nOK\r\n")
    assert (await rig.engine.command("ATI3")).lines == ["AFTER"]


@pytest.mark.parametrize("reply", [b"\r\nOK\r\n", b"\x10\x03\r\nOK\r\n"], ids=["cx", "usr"])
async def test_transmit_stream(rig: Rig, reply: bytes) -> None:
    audio = EVERY_BYTE * 16
    got: list[bytes] = []

    async def vtx(modem: FakeModem) -> None:
        modem.send(b"\r\nCONNECT\r\n\x10u")
        data, codes = await modem.read_stream()
        got.append(data)
        assert codes == ["ETX"]
        modem.send(reply)

    rig.modem.on_call("AT+VTX", vtx)
    async with rig.engine.stream("AT+VTX") as stream:
        for start in range(0, len(audio), 800):
            await stream.send_audio(audio[start : start + 800])
        response = await stream.finish()
        assert response.final == "OK"
        items = [item async for item in stream]
    assert got == [audio]
    assert DleEvent("u") in items
    assert (await rig.engine.command("AT")).final == "OK"


async def test_modem_ends_transmit_by_itself(rig: Rig) -> None:
    rig.modem.on("AT+VTX", "\r\nCONNECT\r\n", 0.01, "\r\nNO CARRIER\r\n")
    async with rig.engine.stream("AT+VTX") as stream:
        assert await asyncio.wait_for(stream.read(), 2) is None
        assert stream.ended and stream.final is not None
        assert stream.final.code == "NO CARRIER"
        with pytest.raises(StreamError):
            await stream.send_audio(b"\x80" * 100)
    assert rig.modem.commands == ["AT+VTX"]


async def test_stream_refused(rig: Rig) -> None:
    rig.modem.on("AT+VTR", "\r\nERROR\r\n")
    with pytest.raises(AtError):
        async with rig.engine.stream("AT+VTR", receive=True):
            pytest.fail("entered a refused stream")
    assert (await rig.engine.command("AT")).final == "OK"


async def test_leaving_a_stream_early_aborts_it(rig: Rig) -> None:
    codes_seen: list[list[str]] = []

    async def vrx(modem: FakeModem) -> None:
        modem.send(b"\r\nCONNECT\r\n" + b"\x80" * 400)
        _, codes = await modem.read_stream()
        codes_seen.append(codes)
        modem.send(b"\x10\x03\r\nOK\r\n")

    rig.modem.on_call("AT+VRX", vrx)
    with pytest.raises(RuntimeError, match="caller hung up"):
        async with rig.engine.stream("AT+VRX", receive=True) as stream:
            await asyncio.wait_for(stream.read(), 2)
            raise RuntimeError("caller hung up")
    assert codes_seen == [["!"]]
    assert (await rig.engine.command("AT")).final == "OK"


async def test_cancelled_stream_still_releases_the_line(rig: Rig) -> None:
    async def vtx(modem: FakeModem) -> None:
        modem.send(b"\r\nCONNECT\r\n")
        _, codes = await modem.read_stream()
        assert codes == ["\x18", "ETX"]  # DLE CAN, DLE ETX: drop the buffer, end
        modem.send(b"\r\nOK\r\n")

    rig.modem.on_call("AT+VTX", vtx)
    entered = asyncio.Event()

    async def play() -> None:
        async with rig.engine.stream("AT+VTX"):
            entered.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(play())
    await asyncio.wait_for(entered.wait(), 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await asyncio.wait_for(rig.engine.command("AT"), 2)).final == "OK"


async def test_port_vanishing(rig: Rig) -> None:
    rig.modem.on("ATHANG", 5.0)
    pending = asyncio.create_task(rig.engine.command("ATHANG", timeout=100.0))
    await asyncio.sleep(0.02)
    await rig.modem.stop()
    rig.peer.close()
    with pytest.raises(PortClosed):
        await asyncio.wait_for(pending, 2)
    down = await next_event(rig.engine)
    assert isinstance(down, PortDown)
    assert not rig.engine.alive
    with pytest.raises(PortClosed):
        await rig.engine.command("AT")


async def test_close_fails_a_waiting_command(rig: Rig) -> None:
    rig.modem.on("ATHANG", 5.0)
    pending = asyncio.create_task(rig.engine.command("ATHANG", timeout=100.0))
    await asyncio.sleep(0.02)
    await rig.engine.close()
    with pytest.raises(PortClosed):
        await pending


async def test_commands_must_be_one_line_of_ascii(rig: Rig) -> None:
    for bad in ("AT\rZ", "ATDT۱۲", ""):
        with pytest.raises(ValueError):
            await rig.engine.command(bad)


async def test_engine_over_a_thread_port() -> None:
    """The same engine over socket:// (a terminal server) instead of a pty."""
    answered = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readuntil(b"\r")
        writer.write(line + b"\r\nOK\r\n" if line == b"ATI3\r" else b"\r\nERROR\r\n")
        await writer.drain()
        answered.set()
        await reader.read()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = await open_port(f"socket://127.0.0.1:{server.sockets[0].getsockname()[1]}")
    try:
        async with AtEngine(port) as engine:
            assert (await engine.command("ATI3")).final == "OK"
    finally:
        await port.close()
        server.close()
        await server.wait_closed()
    assert answered.is_set()


def test_abort_codes() -> None:
    assert ABORT_RX == b"\x10!" and END_TX == b"\x10\x03"


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        ("AT+VTS=1,2,3,4", "AT+VTS=…"),
        ("AT+VTS={5,20},#", "AT+VTS=…"),
        ("ATDT09121234567;", "ATD…"),
        ("atdt0215;", "atd…"),
        ("ATE0V1DT123", "ATE0V1D…"),
        ("AT+VTD=10", "AT+VTD=…"),
        ("AT+VSM=?", "AT+VSM=?"),
        ("ATI3", "ATI3"),
        ("\x10\x03", "<non-AT data>"),
    ],
)
def test_commands_are_redacted_in_errors(command: str, shown: str) -> None:
    assert redact_command(command) == shown
    assert AtTimeout(command, 1.0).command == shown
    error = AtError(command, "ERROR", ["line"])
    assert str(error) == f"{shown}: ERROR" and error.lines == ["line"]
