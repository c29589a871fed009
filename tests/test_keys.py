"""DtmfFramer: one key per press, whatever the chip's DTMF framing.

Bare chips send ``DLE 5`` once per press; IS-101 chips wrap a press in
``DLE /`` ... ``DLE ~`` and Conexant repeats the digit inside while the key is
held (VOICE-MODEMS.md section 3). Other events (busy, underrun, ring, ETX...)
may arrive anywhere in between and must not disturb the count.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from daemon1521.modem.dle import DleEvent
from daemon1521.modem.keys import DtmfFramer

KEYS = "0123456789*#ABCD"
OTHER_EVENTS = ["b", "d", "u", "o", "s", "q", "R", "r", "h", "H", "l", "L", "ETX", "X", "c"]


def feed(framer: DtmfFramer, codes: list[str] | str) -> list[str]:
    keys = []
    for code in codes:
        key = framer.feed(DleEvent(code))
        if key is not None:
            keys.append(key)
    return keys


def test_bare_digits_are_one_press_each():
    framer = DtmfFramer()
    assert feed(framer, "1223#") == list("1223#")


def test_a_wrapped_press_counts_once_however_often_the_digit_repeats():
    framer = DtmfFramer()
    assert feed(framer, "/000000~") == ["0"]
    assert feed(framer, "/5~/5~") == ["5", "5"]  # the same key twice is two presses


def test_the_key_is_reported_when_pressed_not_when_released():
    framer = DtmfFramer()
    assert feed(framer, "/") == []
    assert feed(framer, "7") == ["7"]  # at once: barge-in must not wait for the release
    assert feed(framer, "777~") == []


def test_another_digit_inside_one_frame_is_a_new_press():
    assert feed(DtmfFramer(), "/1112~") == ["1", "2"]


def test_a_lost_release_does_not_swallow_the_next_press():
    assert feed(DtmfFramer(), "/44/44~") == ["4", "4"]


def test_bare_and_wrapped_presses_mix():
    """A chip identified only as generic V.253 may wrap its digits anyway (field-quirks)."""
    assert feed(DtmfFramer(), "/333~/3~9") == ["3", "3", "9"]


def test_other_events_are_not_keys_and_do_not_break_a_frame():
    framer = DtmfFramer()
    assert feed(framer, ["/", "8", "u", "b", "8", "ETX", "8", "~", "d"]) == ["8"]


def test_reset_forgets_a_half_seen_press():
    framer = DtmfFramer()
    assert feed(framer, "/6") == ["6"]
    framer.reset()
    assert feed(framer, "6~") == ["6"]  # a bare digit after the reset is a new press


@st.composite
def chip_streams(draw: st.DrawFn) -> tuple[list[str], list[str]]:
    """Presses, and what some chip makes of them, with noise events anywhere."""
    presses = draw(st.lists(st.sampled_from(KEYS), max_size=12))
    wrapped = draw(st.booleans())
    codes: list[str] = []
    must_wrap = False  # after a lost release, only a new "/" tells the next press apart
    for index, key in enumerate(presses):
        if not must_wrap and (not wrapped or draw(st.booleans())):  # chips may mix styles
            codes.append(key)
            continue
        repeats = draw(st.integers(min_value=1, max_value=8))
        lost = index + 1 < len(presses) and draw(st.integers(0, 3)) == 0
        codes.extend(["/", *([key] * repeats), *([] if lost else ["~"])])
        must_wrap = lost
    noisy: list[str] = []
    for code in codes:
        noisy.extend(draw(st.lists(st.sampled_from(OTHER_EVENTS), max_size=2)))
        noisy.append(code)
    noisy.extend(draw(st.lists(st.sampled_from(OTHER_EVENTS), max_size=2)))
    return presses, noisy


@given(chip_streams())
def test_any_interleaving_gives_one_key_per_press(stream):
    presses, codes = stream
    assert feed(DtmfFramer(), codes) == presses
