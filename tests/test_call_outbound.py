"""A call holding a second, leased line: always given back on hook, always recorded.

The daemon runs one inbound and one outbound emulated line. The call handler
answers, borrows the outbound line with ``call.outbound()``, dials a "bank"
phone on it, and then the call ends badly: the handler fails, the caller hangs
up, or the daemon stops. Whatever happened, the outbound line is on hook at
the exchange, back in the pool, and the call's lease record says how it ended.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from daemon1521.daemon.call import Call
from daemon1521.modem.voice import VoiceModem
from tests.test_daemon import CALLER, Site, make_site

BANK = "02188889999"
Then = Callable[[Call, VoiceModem], Awaitable[None]]


class BankLeg:
    """A call handler that answers, holds the outbound line with the bank on it, then ``then``."""

    def __init__(self, then: Then) -> None:
        self.then = then
        self.calls: list[Call] = []
        self.holding = asyncio.Event()

    async def take_call(self, call: Call) -> None:
        self.calls.append(call)
        await call.modem.answer()
        async with call.outbound() as modem:
            assert modem is not None
            assert await modem.dial(BANK) == "answered"
            self.holding.set()
            await self.then(call, modem)


@contextlib.asynccontextmanager
async def bank_site(tmp_path: Path, then: Then, **config: Any) -> AsyncIterator[Site]:
    site = await make_site(tmp_path, roles=["inbound", "outbound"], **config)
    leg = BankLeg(then)
    site.daemon.handler = leg
    try:
        await site.daemon.start()
        yield site
    finally:
        await site.daemon.stop()
        await site.rig.stop()
        site.notify.close()


def leg_of(site: Site) -> BankLeg:
    handler = site.daemon.handler
    assert isinstance(handler, BankLeg)
    return handler


async def call_bank(site: Site) -> Any:
    """A caller rings 1521; the bank answers the outbound call; both connected."""
    bank = site.rig.phone(BANK)
    phone = site.rig.phone(CALLER)
    assert await phone.dial("1521") == "answered"
    await bank.wait_for_ring(30)
    await bank.answer()
    await site.rig.clock.wait_for(leg_of(site).holding.wait(), 60)
    return phone


def outbound_on_hook(site: Site) -> bool:
    return site.rig.exchange.line_state(site.rig.lines[1]) == "idle"


async def fail(call: Call, modem: VoiceModem) -> None:
    await call.clock.sleep(1.0)
    raise RuntimeError("a bug in the bank leg")


async def listen_to_caller(call: Call, modem: VoiceModem) -> None:
    await call.modem.next_key(120.0)  # the caller hangs up meanwhile


async def hold_on(call: Call, modem: VoiceModem) -> None:
    await asyncio.Event().wait()


async def test_a_failing_handler_gives_the_line_back_on_hook(tmp_path: Path) -> None:
    async with bank_site(tmp_path, fail) as site:
        phone = await call_bank(site)
        await site.wait_line("line1", lambda ln: ln.state == "idle")
        await site.wait_line("line2", lambda ln: ln.state == "idle")
        assert outbound_on_hook(site)
        assert site.daemon.supervisor is not None and site.daemon.supervisor.pool.free() == 1
        (call,) = leg_of(site).calls
        (lease,) = call.leases
        assert (lease.line, lease.end) == ("line2", "failed")
        assert lease.ended is not None and lease.ended - lease.started >= 1.0
        await phone.hang_up()


async def test_the_caller_hanging_up_gives_the_line_back_on_hook(tmp_path: Path) -> None:
    async with bank_site(tmp_path, listen_to_caller) as site:
        phone = await call_bank(site)
        await phone.wait(1.0)
        await phone.hang_up()
        await site.wait_line("line1", lambda ln: ln.state == "idle" and ln.calls_total == 1)
        await site.wait_line("line2", lambda ln: ln.state == "idle")
        assert outbound_on_hook(site)
        (lease,) = leg_of(site).calls[0].leases
        assert (lease.line, lease.end) == ("line2", "failed")  # the call ended under it


async def test_stopping_the_daemon_gives_the_line_back_on_hook(tmp_path: Path) -> None:
    async with bank_site(tmp_path, hold_on, drain=2.0) as site:
        await call_bank(site)
        assert not outbound_on_hook(site)
        assert await site.daemon.stop() is False  # the call was cut at the drain's end
        assert outbound_on_hook(site)
        assert site.rig.exchange.line_state(site.rig.lines[0]) == "idle"
        (lease,) = leg_of(site).calls[0].leases
        assert (lease.line, lease.end) == ("line2", "cancelled")
        assert lease.ended is not None
