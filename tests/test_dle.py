"""The DLE codec: events, shielding, and independence from how reads split the stream."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon1521.modem.dle import (
    ABORT_RX,
    CANCEL_TX,
    COMPLEX_REPORT_LIMIT,
    DLE,
    END_DUPLEX,
    END_TX,
    ETX,
    CodeSpotter,
    DleDecoder,
    DleEvent,
    shield,
)


def merged(items: list[bytes | DleEvent]) -> list[bytes | DleEvent]:
    out: list[bytes | DleEvent] = []
    for item in items:
        if isinstance(item, bytes) and out and isinstance(out[-1], bytes):
            out[-1] += item
        else:
            out.append(item)
    return out


def decode_in_pieces(data: bytes, cuts: list[int], **options: bool) -> list[bytes | DleEvent]:
    decoder = DleDecoder(**options)
    items: list[bytes | DleEvent] = []
    start = 0
    for cut in [*sorted(cuts), len(data)]:
        items += decoder.feed(data[start:cut])
        start = cut
    return merged(items)


def test_constants() -> None:
    assert DLE == b"\x10" and ETX == b"\x03"
    assert END_TX == b"\x10\x03"
    assert CANCEL_TX == b"\x10\x18"
    assert ABORT_RX == b"\x10!"
    assert END_DUPLEX == b"\x10^"


def test_events_audio_and_escapes() -> None:
    decoder = DleDecoder()
    stream = b"\x80\x81" + b"\x10\x10" + b"\x7f" + b"\x105" + b"\x10/" + b"\x10~" + b"\x10\x1a\x01"
    assert decoder.feed(stream + b"\x10b\x10u\x10R\x10\x03") == [
        b"\x80\x81\x10\x7f",
        DleEvent("5"),
        DleEvent("/"),
        DleEvent("~"),
        b"\x10\x10\x01",
        DleEvent("b"),
        DleEvent("u"),
        DleEvent("R"),
        DleEvent("ETX"),
    ]


def test_dle_sub_can_be_turned_off() -> None:
    assert DleDecoder(dle_sub=False).feed(b"a\x10\x1ab") == [b"a", DleEvent("\x1a"), b"b"]


def test_lone_dle_waits_for_next_read() -> None:
    decoder = DleDecoder()
    assert decoder.feed(b"ab\x10") == [b"ab"]
    assert decoder.pending
    assert decoder.feed(b"\x10cd") == [b"\x10cd"]
    assert decoder.feed(b"\x10") == []
    assert decoder.feed(b"#") == [DleEvent("#")]
    assert not decoder.pending


def test_complex_report_is_one_event() -> None:
    decoder = DleDecoder()
    items = decoder.feed(b"\x80\x10XNMBR=123\r\n\x10.\x81")
    assert items == [b"\x80", DleEvent("X", b"NMBR=123\r\n"), b"\x81"]


def test_endless_complex_report_gives_up() -> None:
    decoder = DleDecoder()
    items = decoder.feed(b"\x10X" + b"z" * (COMPLEX_REPORT_LIMIT + 10))
    assert items == [DleEvent("X", b"z" * COMPLEX_REPORT_LIMIT), b"z" * 10]


def test_feed_until_etx_returns_the_rest() -> None:
    decoder = DleDecoder()
    items, rest = decoder.feed_until_etx(b"\x80\x10\x10\x10\x03\r\nOK\r\n")
    assert items == [b"\x80\x10", DleEvent("ETX")]
    assert rest == b"\r\nOK\r\n"
    items, rest = decoder.feed_until_etx(b"\x80\x81")
    assert rest is None


def test_event_repr_hides_digits() -> None:
    assert "5" not in repr(DleEvent("5"))
    assert "b" in repr(DleEvent("b"))
    assert DleEvent("5").is_dtmf and not DleEvent("b").is_dtmf


def test_shield_doubles_dle() -> None:
    assert shield(b"\x01\x10\x02\x10\x10") == b"\x01\x10\x10\x02\x10\x10\x10\x10"
    assert shield(b"") == b""


def test_every_byte_value_survives_shielding() -> None:
    audio = bytes(range(256)) * 32  # ~1 s of 8 kHz audio, every byte value
    assert DleDecoder().feed(shield(audio)) == [audio]


streams = st.lists(
    st.one_of(
        st.binary(max_size=20),
        st.sampled_from([b"\x10", b"\x10\x10", b"\x10\x03", b"\x10\x1a", b"\x10X", b"\x10."]),
        st.sampled_from([b"\x105", b"\x10/", b"\x10~", b"\x10b", b"\x10u", b"\x10R"]),
    ),
    max_size=30,
).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(data=streams, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8))
def test_any_split_gives_the_same_result(data: bytes, cuts: list[int]) -> None:
    cuts = [min(c, len(data)) for c in cuts]
    assert decode_in_pieces(data, cuts) == decode_in_pieces(data, [])
    assert decode_in_pieces(data, cuts, dle_sub=False) == decode_in_pieces(data, [], dle_sub=False)


@settings(max_examples=200, deadline=None)
@given(data=streams)
def test_every_single_split_point(data: bytes) -> None:
    whole = decode_in_pieces(data, [])
    for cut in range(len(data) + 1):
        assert decode_in_pieces(data, [cut]) == whole


@settings(max_examples=300, deadline=None)
@given(garbage=st.binary(max_size=600), options=st.booleans())
def test_garbage_never_raises(garbage: bytes, options: bool) -> None:
    decoder = DleDecoder(dle_sub=options, complex_events=not options)
    for item in decoder.feed(garbage):
        assert isinstance(item, bytes | DleEvent)
        if isinstance(item, bytes):
            assert item
    decoder.feed_until_etx(garbage)


@settings(max_examples=300, deadline=None)
@given(audio=st.binary(max_size=500), cuts=st.lists(st.integers(0, 1000), max_size=5))
def test_shield_round_trip(audio: bytes, cuts: list[int]) -> None:
    wire = shield(audio) + END_TX
    cuts = [min(c, len(wire)) for c in cuts]
    items = decode_in_pieces(wire, cuts)
    expected: list[bytes | DleEvent] = [audio] if audio else []
    assert items == [*expected, DleEvent("ETX")]


@settings(max_examples=200, deadline=None)
@given(data=streams, cut=st.integers(0, 400))
def test_until_etx_split_matches_whole(data: bytes, cut: int) -> None:
    """Stopping at ETX: the items and the rest do not depend on the split either."""

    def run(pieces: list[bytes]) -> tuple[list[bytes | DleEvent], bytes | None]:
        decoder = DleDecoder()
        items: list[bytes | DleEvent] = []
        for index, piece in enumerate(pieces):
            got, rest = decoder.feed_until_etx(piece)
            items += got
            if rest is not None:
                return merged(items), rest + b"".join(pieces[index + 1 :])
        return merged(items), None

    cut = min(cut, len(data))
    assert run([data[:cut], data[cut:]]) == run([data])


# --- spotting codes in batched reads -----------------------------------------------

_DLE_HEAVY = st.binary(min_size=2, max_size=200).map(
    lambda raw: bytes(0x10 if b % 3 == 0 else b for b in raw)  # runs of DLE, pairs, codes
)


def _code_ends(stream: bytes) -> list[int]:
    """Index of the byte that completes each DLE code (DLE + non-DLE), by a byte walk."""
    ends, i = [], 0
    while i < len(stream) - 1:
        if stream[i] == 0x10:
            if stream[i + 1] != 0x10:
                ends.append(i + 1)
            i += 2
        else:
            i += 1
    return ends


@settings(max_examples=1000)
@given(_DLE_HEAVY, st.lists(st.integers(0, 200), max_size=40))
def test_code_spotter_is_never_late_wherever_the_stream_is_split(stream, cuts):
    spotter = CodeSpotter()
    bounds = sorted({0, len(stream), *(c for c in cuts if c <= len(stream))})
    flagged = []  # (first, last) byte indices of each chunk said to hold a code
    for a, b in itertools.pairwise(bounds):
        if spotter.feed(stream[a:b]):
            flagged.append((a, b))
    for end in _code_ends(stream):
        # the chunk that completes the code, or the one before it (a DLE at
        # its end), was flagged
        assert any(a <= end < b or (b == end and stream[end - 1] == 0x10) for a, b in flagged)


@settings(max_examples=300)
@given(st.binary(max_size=400), st.lists(st.integers(0, 800), max_size=12))
def test_code_spotter_stays_quiet_on_shielded_audio(audio, cuts):
    stream = shield(audio)
    spotter = CodeSpotter()
    bounds = sorted({0, len(stream), *(c for c in cuts if c <= len(stream))})
    for a, b in itertools.pairwise(bounds):
        if spotter.feed(stream[a:b]):
            # only a split shielded pair (its DLE ends the chunk) may be taken for one
            assert stream[b - 1] == 0x10, (stream[a:b], a, b)
