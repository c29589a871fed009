"""Unit tests of the emulated modem's pure parts: V.250 parsing and line editing,
DLE shielding, +VTS and dial strings, personality loading, cadence classification."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from daemon1521.dsp.dtmf import ToneDetector, ToneEvent
from daemon1521.dsp.tones import CadencedTone
from daemon1521.emulator.modem import (
    PersonalityError,
    available_personalities,
    load_personality,
    parse_personality,
)
from daemon1521.emulator.modem.dialstring import DialStringError, parse_dial
from daemon1521.emulator.modem.personality import PERSONALITY_DIR, ArgSpec
from daemon1521.emulator.modem.progress import CadenceClassifier
from daemon1521.emulator.modem.shielding import CAN, ETX, Control, HostDecoder, event, shield
from daemon1521.emulator.modem.v250 import (
    OVERFLOW,
    REPEAT,
    Command,
    LineEditor,
    parse_line,
    split_args,
)
from daemon1521.emulator.modem.vts import ToneStep, VtsError, VtsRules, parse_vts

PERSONALITIES = available_personalities()

# --- V.250 command lines -----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "commands"),
    [
        ("", []),
        ("E0V1", [Command("E", "", "0"), Command("V", "", "1")]),
        ("e0 v 1", [Command("E", "", "0"), Command("V", "", "1")]),
        ("+FCLASS=8;+VLS=1", [Command("+FCLASS", "=", "8"), Command("+VLS", "=", "1")]),
        ("+FCLASS?", [Command("+FCLASS", "?")]),
        ("+VSM=?", [Command("+VSM", "=?")]),
        ("+GMI", [Command("+GMI")]),
        ("S0=2S7?", [Command("S0", "=", "2"), Command("S7", "?")]),
        ("S0?", [Command("S0", "?")]),
        ("S11", [Command("S11")]),
        ("S0=", [Command("S0", "=", "")]),
        ("?", [Command("S", "?")]),
        ("=5", [Command("S", "=", "5")]),
        ("&F&W0Z", [Command("&F", "", ""), Command("&W", "", "0"), Command("Z", "", "")]),
        ("I3", [Command("I", "", "3")]),
        ("DT 555-1234;", [Command("D", "", "T555-1234;")]),
        ("DT1521;E0", [Command("D", "", "T1521;"), Command("E", "", "0")]),
        ("D5551234", [Command("D", "", "5551234")]),
        ("-SCID=1", [Command("-SCID", "=", "1")]),
        ("!4886=02", [Command("!4886", "=", "02")]),
        ("+VTS={!,30},1,5,2,1", [Command("+VTS", "=", "{!,30},1,5,2,1")]),
        ('+X="a;b c"', [Command("+X", "=", '"a;b c"')]),
        ("+VCID=1;E0", [Command("+VCID", "=", "1"), Command("E", "", "0")]),
        ("\\N3%C0", [Command("\\N", "", "3"), Command("%C", "", "0")]),
        # V.250: without ";" the rest of the line is the value (and fails later)
        ("V1+FCLASS=8+VLS=1", [Command("V", "", "1"), Command("+FCLASS", "=", "8+VLS=1")]),
    ],
)
def test_parse_line(body: str, commands: list[Command]) -> None:
    parsed = parse_line(body)
    assert not parsed.error
    assert list(parsed.commands) == commands


@pytest.mark.parametrize(
    ("body", "before"),
    [
        ("E0*", [Command("E", "", "0")]),
        ("+", []),
        ("+VLS?E0", []),
        ("+VLS=?X", []),
        ('+X="open', []),
        ("E0&", [Command("E", "", "0")]),
        ("S=3", []),
    ],
)
def test_parse_errors_keep_the_commands_before(body: str, before: list[Command]) -> None:
    parsed = parse_line(body)
    assert parsed.error
    assert list(parsed.commands) == before


@example("ATS\u00b2=1")
@given(st.text(max_size=80))
@settings(max_examples=300, deadline=None)
def test_parse_line_never_raises(body: str) -> None:
    parsed = parse_line(body)
    assert all(c.name == c.name.upper() or '"' in c.arg for c in parsed.commands)


def test_split_args_keeps_groups() -> None:
    assert split_args("{!,30},1,[933,933,120],,") == ["{!,30}", "1", "[933,933,120]", "", ""]
    assert split_args('"a,b",(1,2)') == ['"a,b"', "(1,2)"]


def _feed(editor: LineEditor, data: bytes) -> tuple[bytes, list[object]]:
    echo = b""
    lines: list[object] = []
    for byte in data:
        e, line = editor.feed(byte)
        echo += e
        if line is not None:
            lines.append(line)
    return echo, lines


def test_editor_collects_lines_and_echoes_everything() -> None:
    editor = LineEditor(60)
    echo, lines = _feed(editor, b"xyzATE0\r\nat+fclass?\r")
    assert echo == b"xyzATE0\r\nat+fclass?\r"
    assert lines == ["E0", "+fclass?"]


def test_editor_prefix_is_case_insensitive_and_restarts() -> None:
    editor = LineEditor(60)
    assert _feed(editor, b"aAtI3\r")[1] == ["I3"]
    assert _feed(editor, b"At\r")[1] == [""]
    assert _feed(editor, b"A T\r")[1] == []  # a space breaks the prefix
    assert _feed(editor, b"\r\r")[1] == []  # a CR without AT is no line


def test_editor_backspace_edits_and_echoes_bs_space_bs() -> None:
    editor = LineEditor(60, backspace_echo=b"\b \b")
    echo, lines = _feed(editor, b"ATE1\b0\r")
    assert lines == ["E0"]
    assert echo == b"ATE1\b \b0\r"
    # backspacing over the prefix abandons the line
    assert _feed(editor, b"AT\b\bI\r")[1] == []


def test_editor_repeat_and_overflow() -> None:
    editor = LineEditor(40)
    assert _feed(editor, b"A/")[1] == [REPEAT]
    assert _feed(editor, b"AT" + b"E" * 41 + b"\r")[1] == [OVERFLOW]
    assert _feed(editor, b"AT" + b"E" * 40 + b"\r")[1] == ["E" * 40]
    # control characters inside a line are ignored (V.250)
    assert _feed(editor, b"ATE\x000\x07\r")[1] == ["E0"]


@given(st.binary(max_size=200))
@settings(max_examples=200, deadline=None)
def test_editor_survives_garbage(data: bytes) -> None:
    editor = LineEditor(40)
    echo, lines = _feed(editor, data)
    assert len(echo) >= len(data) - data.count(8)
    for line in lines:
        assert line in (REPEAT, OVERFLOW) or (isinstance(line, str) and len(line) <= 40)


# --- DLE shielding -----------------------------------------------------------------------


def _decode_all(decoder: HostDecoder, pieces: list[bytes]) -> tuple[bytes, list[int]]:
    audio = b""
    controls: list[int] = []
    for piece in pieces:
        for item in decoder.feed(piece):
            if isinstance(item, bytes):
                audio += item
            else:
                controls.append(item.code)
    return audio, controls


def test_shield_doubles_dle_and_dle_sub_pairs() -> None:
    assert shield(b"\x01\x10\x02") == b"\x01\x10\x10\x02"
    assert shield(b"\x10\x10\x10", dle_sub=True) == b"\x10\x1a\x10\x10"
    assert shield(b"plain") == b"plain"
    assert event("R") == b"\x10R"


def test_decoder_separates_controls_in_order() -> None:
    items = HostDecoder().feed(b"ab\x10\x10c\x10\x18d\x10\x03")
    assert items == [b"ab\x10c", Control(CAN), b"d", Control(ETX)]


def test_decoder_keeps_a_split_dle() -> None:
    decoder = HostDecoder()
    assert decoder.feed(b"ab\x10") == [b"ab"]
    assert decoder.pending
    assert decoder.feed(b"\x10cd\x10") == [b"\x10cd"]
    assert decoder.feed(b"\x03") == [Control(ETX)]


def test_decoder_stops_after_first_control() -> None:
    decoder = HostDecoder()
    items, used = decoder.feed_until_control(b"xy\x10\x03AT\r")
    assert items == [b"xy", Control(ETX)]
    assert used == 4


def test_dle_sub_is_audio_only_where_the_chip_knows_it() -> None:
    assert HostDecoder(dle_sub=True).feed(b"\x10\x1a") == [b"\x10\x10"]
    assert HostDecoder(dle_sub=False).feed(b"\x10\x1a") == [Control(0x1A)]


@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=6), st.booleans())
@settings(max_examples=300, deadline=None)
def test_shield_round_trip_over_any_split(data: bytes, cuts: list[int], dle_sub: bool) -> None:
    wire = shield(data, dle_sub=dle_sub) + b"\x10\x03"
    points = sorted({min(c, len(wire)) for c in cuts})
    pieces = [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)], strict=True)]
    audio, controls = _decode_all(HostDecoder(dle_sub=dle_sub), pieces)
    assert audio == data
    assert controls == [ETX]


# --- +VTS and dial strings -----------------------------------------------------------------


def test_vts_elements() -> None:
    rules = VtsRules(default_duration=10)
    steps = parse_vts("{!,30},1,{5,20},[933,933,120],[,,50],#", rules)
    assert steps == [
        ToneStep("flash", 0.3),
        ToneStep("dtmf", 0.1, key="1"),
        ToneStep("dtmf", 0.2, key="5"),
        ToneStep("tones", 1.2, freqs=(933.0, 933.0)),
        ToneStep("tones", 0.5, freqs=()),
        ToneStep("dtmf", 0.1, key="#"),
    ]
    assert parse_vts("[440,,10]", rules) == [ToneStep("tones", 0.1, freqs=(440.0,))]
    assert parse_vts("!", rules) == [ToneStep("flash", 0.5)]


def test_vts_usr_rejects_a_zero_second_frequency() -> None:
    usr = VtsRules(single_tone_zero=False)
    with pytest.raises(VtsError):
        parse_vts("[933,0,120]", usr)
    assert parse_vts("[933,933,120]", usr)
    assert parse_vts("[,,50]", usr) == [ToneStep("tones", 0.5)]


@pytest.mark.parametrize(
    "arg", ["", "1,,2", "12", "{1,2,3}", "[1]]", "[100,200,10]", "{1,999}", "E", "{x,10}", "[a,,1]"]
)
def test_vts_errors(arg: str) -> None:
    with pytest.raises(VtsError):
        parse_vts(arg, VtsRules())


@given(st.text(alphabet="0123456789*#ABCD!{}[],", max_size=30))
@settings(max_examples=300, deadline=None)
def test_vts_parser_only_raises_vts_errors(arg: str) -> None:
    try:
        steps = parse_vts(arg, VtsRules())
    except VtsError:
        return
    assert all(step.seconds >= 0 for step in steps)


def test_dial_strings() -> None:
    dial = parse_dial("T(021) 555-12,34W9!;E0")
    assert dial.steps == (*"02155512", ",", "3", "4", "W", "9", "!")
    assert dial.semicolon
    assert dial.digits == "02155512349"
    assert not parse_dial("P1521").semicolon
    with pytest.raises(DialStringError):
        parse_dial("S=1")


# --- personalities -----------------------------------------------------------------------


def test_shipped_personalities_load() -> None:
    assert {"conexant-cx93001", "usr-5637", "generic-v253"} <= set(PERSONALITIES)
    for name in PERSONALITIES:
        p = load_personality(name)
        assert p.name == name
        assert p.voice.codec(p.voice.default_codec) is not None


def test_personality_facts_from_the_chip_notes() -> None:
    cx = load_personality("conexant-cx93001")
    usr = load_personality("usr-5637")
    assert cx.identity.ati[0] == ("56000",)
    assert cx.identity.ati[3] == ("CX93001-EIS_V0.2002-V92",)
    assert usr.identity.ati[0] == ("5601",)
    assert usr.identity.ati[3] == ("U.S. Robotics 56K FAX USB V1.2.23",)
    assert cx.voice.codec(1).format == "u8" and cx.voice.codec(129).format is None
    assert [c.code for c in usr.voice.codecs if c.format] == [128, 129, 130, 131]
    assert cx.caller_id.separator == " = " and usr.caller_id.separator == "="
    assert cx.parameters["+VCID"].reset_on_atz and not usr.parameters["+VCID"].reset_on_atz
    assert cx.voice.ring == "dle" and usr.voice.ring == "text"
    assert not cx.voice.silence_detection and usr.voice.silence_detection
    assert usr.voice.vtx_end_etx and not cx.voice.vtx_end_etx
    assert not usr.voice.vts.single_tone_zero


def test_a_personality_is_just_a_file(tmp_path: Path) -> None:
    text = (PERSONALITY_DIR / "usr-5637.toml").read_text()
    text = text.replace('name = "usr-5637"', 'name = "usr-5637-old"')
    text = text.replace('values = ["0", "1", "1.0", "2.0", "8"]', 'values = ["0", "1"]')
    path = tmp_path / "usr-5637-old.toml"
    path.write_text(text)
    old = load_personality(path)
    assert old.name == "usr-5637-old"
    assert "8" not in old.fclass_values
    assert load_personality(str(path)).name == "usr-5637-old"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('name = "usr-5637"', ""), "name: missing"),
        (("tx_buffer = 1024", "tx_buffer = 1024\nbogus = 1"), "voice.bogus: unknown key"),
        (
            ('values = ["0-255"]', 'values = ["0-x"]'),
            "parameters.+VGT.values: bad value range '0-x'",
        ),
        (
            ('format = "alaw"', 'format = "gsm"'),
            "voice.codecs.2.format: expected one of 'u8', 's16le', 'alaw', 'ulaw', got 'gsm'",
        ),
        (
            ('ring = "text"', 'ring = "bell"'),
            "voice.ring: expected one of 'dle', 'text', got 'bell'",
        ),
        (
            ("max_length = 58", "max_length = 10"),
            "command_line.max_length: must be at least 40, not 10",
        ),
        (('[parameters."+VTD"]', '[parameters."+VTDX"]'), "parameters.+VTD: missing"),
        (
            ('framing = "wrapped"', 'framing = "morse"'),
            "voice.dtmf.framing: expected one of 'bare', 'wrapped', got 'morse'",
        ),
        (
            ("11 = [70, 50, 255]", "11 = [20, 50, 255]"),
            "s_registers.11: default 20 outside its range 50-255",
        ),
    ],
)
def test_bad_personalities_name_the_key(change: tuple[str, str], message: str) -> None:
    text = (PERSONALITY_DIR / "usr-5637.toml").read_text()
    old, new = change
    assert old in text
    with pytest.raises(PersonalityError, match=re.escape(message)):
        parse_personality(text.replace(old, new, 1), "test.toml")


def test_unknown_personality_and_bad_toml() -> None:
    with pytest.raises(PersonalityError, match="known:"):
        load_personality("no-such-chip")
    with pytest.raises(PersonalityError, match="not valid TOML"):
        parse_personality("name = ", "x.toml")


def test_arg_specs() -> None:
    assert ArgSpec.parse("0,1,4,5").canonical("4") == "4"
    assert ArgSpec.parse("0,1,4,5").canonical("2") is None
    assert ArgSpec.parse("00-99").canonical("2") == "02"
    assert ArgSpec.parse("0-255").canonical("0128") == "128"
    assert ArgSpec.parse("0-255").canonical("256") is None
    assert ArgSpec.parse("hex").canonical("1f") == "0000001F"
    assert ArgSpec.parse("hex").canonical("xyz") is None


# --- call-progress cadences ------------------------------------------------------------------


def _classify(tone: str, seconds: float) -> list[tuple[str, float]]:
    """Run a 425 Hz tone of the exchange plan through detector and classifier."""
    cadences = {
        "dial": None,
        "ringback": [(1.0, 4.0)],
        "busy": [(0.5, 0.5)],
        "congestion": [(0.25, 0.25)],
    }
    source = CadencedTone([425.0], cadences[tone])
    detector = ToneDetector(425.0)
    classifier = CadenceClassifier(load_personality("generic-v253").call_progress)
    seen: list[tuple[str, float]] = []
    count = 0
    for _ in range(round(seconds * 50)):
        frame = source.read(160)
        count += 160
        for p in classifier.feed(detector.feed(frame), count):
            seen.append((p.kind, round(p.sample / 8000, 1)))
    return seen


def test_cadences_of_the_425_hz_plan() -> None:
    assert [k for k, _ in _classify("dial", 5)] == ["dialtone"]
    ringback = _classify("ringback", 12)
    assert [k for k, _ in ringback] == ["ringback"] * 3
    busy = _classify("busy", 4)
    assert [k for k, _ in busy] == ["busy"] * 3  # from the second burst on, every burst
    assert busy[0][1] == pytest.approx(1.5, abs=0.1)
    assert {k for k, _ in _classify("congestion", 3)} == {"busy"}


def test_classifier_reports_silence_and_gaps() -> None:
    classifier = CadenceClassifier(load_personality("generic-v253").call_progress)
    assert classifier.feed([ToneEvent("on", 0)], 8000) == []
    assert classifier.on_for(8000) == 1.0
    assert classifier.feed([ToneEvent("off", 8000)], 8000)[0].kind == "ringback"
    assert classifier.off_for(16000) == 1.0
    assert not classifier.on


def test_detector_sees_nothing_in_silence() -> None:
    detector = ToneDetector(425.0)
    classifier = CadenceClassifier(load_personality("usr-5637").call_progress)
    assert classifier.feed(detector.feed(np.zeros(8000, dtype=np.int16)), 8000) == []


def test_the_emulated_modem_never_imports_the_driver() -> None:
    """Built from the standard and the chip facts, not from daemon1521.modem."""
    package = Path(__file__).resolve().parents[1] / "daemon1521" / "emulator" / "modem"
    forbidden = ("daemon1521.modem", "daemon1521.ivr", "daemon1521.telebank")
    for source in package.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert not name.startswith(forbidden), f"{source.name} imports {name}"
