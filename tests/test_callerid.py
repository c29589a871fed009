"""Caller-ID lines as real chips format them, and blocks assembled into one CallerInfo."""

from __future__ import annotations

import pytest

from daemon1521.modem.callerid import (
    CallerIdAssembler,
    CallerIdLine,
    CallerInfo,
    build_caller_info,
    parse_callerid_line,
)


def lines(*texts: str) -> list[CallerIdLine]:
    parsed = [parse_callerid_line(t) for t in texts]
    assert all(p is not None for p in parsed)
    return [p for p in parsed if p is not None]


@pytest.mark.parametrize(
    ("text", "key", "value"),
    [
        ("DATE=0117", "DATE", "0117"),
        ("DATE = 1015", "DATE", "1015"),
        ("TIME=1230", "TIME", "1230"),
        ("NMBR=09121234567", "NMBR", "09121234567"),
        ("NMBR = P", "NMBR", "P"),
        ("NMBR=O", "NMBR", "O"),
        ("nmbr=02188887777", "NMBR", "02188887777"),
        ("NAME=ALI REZAEI    ", "NAME", "ALI REZAEI"),
        ("MESG = 0A0B0C", "MESG", "0A0B0C"),
        ("DDN_NMBR= 123", "DDN_NMBR", "123"),
        ("WITHHELD", "NMBR", "WITHHELD"),
    ],
)
def test_line_forms(text: str, key: str, value: str) -> None:
    line = parse_callerid_line(text)
    assert line == CallerIdLine(key, value, text)


@pytest.mark.parametrize("text", ["RING", "OK", "CONNECT", "DATEX", "NUMBER 5", ""])
def test_other_lines_are_not_caller_id(text: str) -> None:
    assert parse_callerid_line(text) is None


def test_number_block_any_order() -> None:
    info = build_caller_info(
        lines("NAME=SARA AHMADI  ", "MESG = 0A", "NMBR=09121234567", "TIME=1230", "DATE = 1015")
    )
    assert info.number == "09121234567"
    assert info.status == "number"
    assert info.name == "SARA AHMADI"
    assert (info.date, info.time, info.message) == ("1015", "1230", "0A")
    assert len(info.raw) == 5


@pytest.mark.parametrize(
    ("texts", "status"),
    [
        (("NMBR = P",), "private"),
        (("NMBR=WITHHELD",), "private"),
        (("WITHHELD",), "private"),
        (("NMBR=O",), "unavailable"),
        (("DATE=0117", "TIME=1200"), "unavailable"),
        (("NAME=P", "DATE=0117"), "private"),
    ],
)
def test_hidden_numbers(texts: tuple[str, ...], status: str) -> None:
    info = build_caller_info(lines(*texts))
    assert info.number is None
    assert info.status == status


def test_ddn_number_used_when_no_nmbr() -> None:
    info = build_caller_info(lines("DDN_NMBR= 123", "NAME=O"))
    assert info.number == "123"
    assert info.name is None


def test_assembler_completes_at_ring() -> None:
    asm = CallerIdAssembler()
    assert asm.add(lines("DATE=0117")[0], 0.0) is None
    assert asm.add(lines("NMBR=0215555")[0], 0.1) is None
    info = asm.ring()
    assert isinstance(info, CallerInfo) and info.number == "0215555"
    assert asm.ring() is None


def test_assembler_waits_for_quiet_after_number() -> None:
    asm = CallerIdAssembler(number_quiet=0.3, block_quiet=1.5)
    asm.add(lines("NMBR=0215555")[0], 10.0)
    assert asm.deadline() == pytest.approx(10.3)
    assert asm.poll(10.2) is None
    asm.add(lines("NAME=X")[0], 10.25)  # NAME after NMBR still joins the block
    assert asm.poll(10.5) is None
    info = asm.poll(10.6)
    assert info is not None and info.name == "X" and info.number == "0215555"
    assert asm.deadline() is None


def test_assembler_without_number_closes_later() -> None:
    asm = CallerIdAssembler(number_quiet=0.3, block_quiet=1.5)
    asm.add(lines("DATE=0117")[0], 0.0)
    assert asm.poll(1.0) is None
    info = asm.poll(1.5)
    assert info is not None and info.status == "unavailable"


def test_repeated_key_starts_a_new_block() -> None:
    asm = CallerIdAssembler()
    asm.add(lines("NMBR=111")[0], 0.0)
    first = asm.add(lines("NMBR=222")[0], 0.05)
    assert first is not None and first.number == "111"
    second = asm.flush()
    assert second is not None and second.number == "222"
