"""The 1521 call flow end to end: callers on an emulated exchange, the daemon's
attendant driving an emulated voice modem through the driver over a pty.

What a caller heard is recognised from the audio that reached the phone; what
was stored is read from the store. Scenarios alternate between the two modem
personalities (the codecs differ: u8 and mu-law), the main one runs on both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path

import pytest

from daemon1521.audio.prompts import PromptCatalog, PromptLibrary
from daemon1521.billing.store import CallRecord
from daemon1521.testbed.caller import Caller
from daemon1521.testbed.ears import Ears
from daemon1521.testbed.site import EmulatedSite
from tests.flow_scenarios import (
    BILLS,
    CALLER,
    DEBT_BILL,
    SCENARIOS,
    Scenario,
)

CONEXANT = "conexant-cx93001"
USR = "usr-5637"
IDLE_WITHIN = 2.5
"""Seconds from a caller's hang-up while the line listens until the modem is on
hook again. CALLFLOW asks for 2 s; telling busy tone takes the driver two
bursts, about 1.9 s."""
IDLE_WITHIN_PLAYING = 3.5
"""The same during a prompt, on a chip that reports busy tone while playing
(the USR; about 2.9 s). A Conexant hears nothing while it plays: a hang-up
shows once the prompt is over, so its hang-ups are tested while it listens."""


@pytest.fixture(scope="session")
def prompts() -> PromptLibrary:
    library = PromptLibrary(PromptCatalog("fa"))
    library.preload(["u8", "ulaw"])
    return library


@pytest.fixture(scope="session")
def ears(prompts: PromptLibrary) -> Ears:
    return Ears(prompts)


SiteFactory = Callable[[str], EmulatedSite]


@pytest.fixture
async def site_for(
    tmp_path: Path, prompts: PromptLibrary, ears: Ears
) -> AsyncIterator[Callable[[str], EmulatedSite]]:
    """Opens a site with the given personality; closed after the test."""
    sites: list[EmulatedSite] = []

    def make(personality: str) -> EmulatedSite:
        site = EmulatedSite(
            tmp_path / f"calls-{len(sites)}.db",
            prompts=prompts,
            bills=BILLS,
            personality=personality,
            ears=ears,
        )
        sites.append(site)
        return site

    yield make
    for site in sites:
        await site.close()


# -- what a caller should hear -------------------------------------------------------


MAX_DAMAGED = 3
"""Prompts per call that may be damaged by a starved line (see :func:`assert_heard`)."""


def assert_heard(caller: Caller, expected: Iterable[str]) -> None:
    """The caller heard the expected prompts, in order, and nothing else in full.

    Sped-up emulation can starve the modem for a moment (the driver feeds it
    against the real clock, and the host is shared): the prompt playing then
    has a gap, is recognised only up to it, and what follows is a fragment
    that matches nothing or a prompt's beginning. So the heard sequence is
    aligned with the expected one: an expected prompt is heard (in full or
    cut short), or at most MAX_DAMAGED of them are in place of broken
    fragments; fragments may come between; a prompt heard in full that was
    not expected, or an expected one with no sound at its place, fails.
    """
    want = caller.site.ears.canonical(expected)
    heard = caller.heard(unknown=True)
    n, m = len(heard), len(want)
    worst = m + n + 1
    # cost[i][j]: fewest damaged prompts aligning want[:i] with heard[:j]
    cost = [[worst] * (n + 1) for _ in range(m + 1)]
    cost[0][0] = 0
    for i in range(m + 1):
        for j in range(n + 1):
            here = cost[i][j]
            if here >= worst or j == n:
                continue
            name, complete = heard[j]
            broken = name is None or not complete
            if broken:  # a fragment between prompts
                cost[i][j + 1] = min(cost[i][j + 1], here)
            if i < m and name == want[i]:
                cost[i + 1][j + 1] = min(cost[i + 1][j + 1], here)
            elif i < m and broken:  # an expected prompt, damaged
                cost[i + 1][j + 1] = min(cost[i + 1][j + 1], here + 1)
    shown = [f"{name}{'' if complete else '~'}" for name, complete in heard]
    assert cost[m][n] <= MAX_DAMAGED, f"heard: {shown}\nwanted: {want}"


async def finished(site: EmulatedSite, calls: int) -> CallRecord:
    """The record of call number ``calls`` once the attendant is done with it."""
    await site.wait_idle(calls=calls)
    record = site.last_call()
    assert record.ended_at is not None and record.outcome is not None
    return record


# -- scenarios --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "personality"),
    [pytest.param(s, (CONEXANT, USR)[index % 2], id=s.name) for index, s in enumerate(SCENARIOS)],
)
async def test_scenario_end_to_end(
    site_for: SiteFactory, scenario: Scenario, personality: str
) -> None:
    async with site_for(personality) as site:
        if scenario.remembered_before is not None:
            site.store.remember_bill(CALLER, scenario.remembered_before)
        await call_through(site, scenario, calls=1)


async def call_through(site: EmulatedSite, scenario: Scenario, calls: int) -> None:
    """Place call number ``calls`` of ``site`` as ``scenario`` says and check it."""
    caller = site.caller(CALLER, presentation="private" if scenario.private else "number")
    await caller.dial()
    for question, keys in scenario.answers:
        await caller.answer(question, keys)
    assert await caller.until_line_hangs_up(timeout=120.0)
    assert_heard(caller, scenario.heard)
    record = await finished(site, calls)
    assert record.answered_at is not None
    scenario.check(record, site.store.remembered_bill(CALLER))


@pytest.mark.parametrize("personality", [CONEXANT, USR])
async def test_new_caller_then_returning_caller(site_for: SiteFactory, personality: str) -> None:
    """The table's first two scenarios as one caller's two calls, on both chips:
    the bill remembered on the first is offered on the second."""
    first, second = SCENARIOS[:2]
    assert second.remembered_before == first.remembered_after
    async with site_for(personality) as site:
        await call_through(site, first, calls=1)
        await site.rig.phone(CALLER).wait(1.0)
        await call_through(site, second, calls=2)


# -- hanging up anywhere ----------------------------------------------------------------

# state -> (remembered bill or None, (question, keys) answered on the way there,
# and where the caller hangs up: "listening" once the state's question has been
# heard, or "playing" early in the state's first prompt)
ROUTES: dict[str, tuple[str | None, list[tuple[str, str]], str]] = {
    "welcome": (None, [], "playing"),
    "remembered_bill": (DEBT_BILL, [], "listening:remembered_bill_confirm"),
    "ask_bill": (None, [], "listening:ask_bill_id"),
    "read_back_bill": (
        None,
        [("ask_bill_id", DEBT_BILL + "#")],
        "listening:bill_entered_confirm",
    ),
    "offer_remember_bill": (
        None,
        [("ask_bill_id", DEBT_BILL + "#"), ("bill_entered_confirm", "1")],
        "listening:offer_remember_bill",
    ),
    "announce": (DEBT_BILL, [("remembered_bill_confirm", "1")], "playing"),
    "offer_payment": (DEBT_BILL, [("remembered_bill_confirm", "1")], "listening:offer_payment"),
    "payment": (
        DEBT_BILL,
        [("remembered_bill_confirm", "1"), ("offer_payment", "1")],
        "playing",
    ),
    "goodbye": (DEBT_BILL, [("remembered_bill_confirm", "1"), ("offer_payment", "2")], "playing"),
}
DECIDED = {"payment": "not_paid", "goodbye": "not_paid"}
"""States reached after the outcome is settled: a hang-up there keeps it. (A
hang-up in ``lookup``, whose one prompt is shorter than busy-tone detection,
is covered by test_flow1521_logic.py.)"""


@pytest.mark.parametrize(
    ("personality", "states"),
    [
        (CONEXANT, ["remembered_bill", "ask_bill", "read_back_bill", "offer_remember_bill"]),
        (USR, ["welcome", "announce", "offer_payment", "payment", "goodbye"]),
    ],
)
async def test_hang_up_in_every_state(
    site_for: SiteFactory, personality: str, states: list[str]
) -> None:
    async with site_for(personality) as site:
        for count, state in enumerate(states, start=1):
            bill, answers, leave = ROUTES[state]
            number = f"0217000{count:04d}"
            if bill is not None:
                site.store.remember_bill(number, bill)
            caller = site.caller(number)
            await caller.dial()
            for prompt, keys in answers:
                await caller.answer(prompt, keys)
            if leave == "playing":
                await caller.await_sound()
                await caller.wait(0.3)
                limit = IDLE_WITHIN_PLAYING
            else:
                await caller.hear(leave.removeprefix("listening:"))
                await caller.wait(1.0)
                limit = IDLE_WITHIN
            left_at = site.rig.clock.now()
            await caller.hang_up()
            while site.line_state != "idle" and site.rig.clock.now() - left_at < 2 * limit:
                await caller.wait(0.02)
            assert site.rig.clock.now() - left_at <= limit, f"line still busy after {state}"
            record = await finished(site, count)
            assert record.last_state == state
            assert record.outcome == DECIDED.get(state, "hung_up")
            if state not in DECIDED:
                assert record.reason == f"hung up in {state} (busy_tone)"
