"""The daemon in this process, on emulated lines: readiness, faults, operators, drain.

The exchange and its modems run in the test's event loop as fast as the host
allows, and the daemon runs on the exchange's clock; it opens their ptys
exactly as it opens /dev/ttyACM0. Calls are answered by a small handler
(tone, one key, record), so these tests are about the daemon, not the 1521
script.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from daemon1521.billing.ids import make_bill_id, make_payment_id
from daemon1521.config import load_config
from daemon1521.daemon.app import Daemon
from daemon1521.daemon.control import arequest
from daemon1521.daemon.supervisor import Line
from daemon1521.emulator.rig import Rig
from tests.daemon_helpers import NotifyListener, ToneCalls, config_text, short_call

CALLER = "09121234567"
OTHER_CALLER = "09351112233"


@dataclass
class Site:
    rig: Rig
    daemon: Daemon
    notify: NotifyListener
    tmp: Path

    @property
    def socket(self) -> Path:
        return self.daemon.config.control.socket

    def line(self, name: str) -> Line:
        assert self.daemon.supervisor is not None
        return self.daemon.supervisor.line(name)

    async def wait_line(self, name: str, predicate: Callable[[Line], bool], timeout=10.0) -> None:
        assert await self.line(name).wait_for(predicate, timeout), self.line(name).snapshot()

    async def ask(self, command: str, **args: Any) -> dict[str, Any]:
        return await arequest(self.socket, command, **args)


async def make_site(tmp_path: Path, **config: Any) -> Site:
    """An exchange with two modems and a daemon (not started) configured for them."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    rig = Rig(2, ["conexant-cx93001", "usr-5637"], speed=None)
    await rig.start()
    notify = NotifyListener(tmp_path / "notify.sock")
    config_file = tmp_path / "daemon1521.toml"
    config.setdefault("drain", 30.0)
    config_file.write_text(config_text(tmp_path, [str(m.link) for m in rig.modems], **config))
    env = {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "400000"}
    daemon = Daemon(load_config(config_file), handler=ToneCalls(), clock=rig.clock, env=env)
    return Site(rig, daemon, notify, tmp_path)


@contextlib.asynccontextmanager
async def running(tmp_path: Path, **config: Any) -> AsyncIterator[Site]:
    site = await make_site(tmp_path, **config)
    try:
        await site.daemon.start()
        yield site
    finally:
        await site.daemon.stop()
        await site.rig.stop()
        site.notify.close()


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    async with running(tmp_path) as site:
        yield site


async def call_and_press(rig: Rig, caller: str, key: str = "5") -> str:
    """A caller dials 1521, presses a key once the greeting started, and hangs up."""
    phone = rig.phone(caller)
    outcome = await phone.dial("1521")
    if outcome == "answered":
        await phone.wait(1.0)
        await phone.press(key)
        await phone.wait(1.0)
    await phone.hang_up()
    return outcome


async def test_ready_status_and_watchdog_reach_systemd(site: Site) -> None:
    ready = site.notify.seen("READY", "1")
    assert ready and ready[0]["STATUS"] == "2 lines: 2 idle, 0 in call, 0 out of service"
    await site.notify.wait_for(lambda m: m.get("WATCHDOG") == "1")
    phone = site.rig.phone(CALLER)
    assert await phone.dial("1521") == "answered"
    await site.notify.wait_for(lambda m: "1 in call" in m.get("STATUS", ""))
    # the handler reports its first state a moment after the line goes in_call
    for _ in range(500):
        if site.line("line1").snapshot()["flow_state"] is not None:
            break
        await asyncio.sleep(0.01)
    status = await site.ask("status")
    line1 = status["lines"][0]
    assert line1["state"] == "in_call" and line1["caller"] == "0912*****67"
    assert line1["call_id"] == 1 and line1["flow_state"] in ("greeting", "waiting_for_key")
    assert line1["modem"]["model"] and line1["modem"]["firmware"]
    assert status["totals"]["in_call"] == 1 and status["totals"]["idle"] == 1
    assert CALLER not in str(status)
    await phone.wait(0.5)
    await phone.press("7")
    await phone.wait(0.5)
    await phone.hang_up()
    await site.wait_line("line1", lambda ln: ln.state == "idle")
    await site.notify.wait_for(lambda m: m.get("STATUS", "").startswith("2 lines: 2 idle"))
    calls = (await site.ask("calls"))["calls"]
    assert len(calls) == 1
    assert calls[0]["line"] == "line1" and calls[0]["outcome"] == "no_debt"
    assert calls[0]["caller"] == "0912*****67" and CALLER not in str(calls)
    stats = (await site.ask("stats"))["stats"]
    assert stats["calls_today"] == 1 and stats["lines"]["line1"]["calls_today"] == 1


async def test_a_modem_dying_mid_call_costs_that_call_only(site: Site) -> None:
    rig = site.rig
    first = rig.phone(CALLER)
    assert await first.dial("1521") == "answered"
    await site.wait_line("line1", lambda ln: ln.state == "in_call")
    await rig.modems[0].vanish()  # USB modem unplugged in the middle of the call
    await site.wait_line("line1", lambda ln: ln.state == "out_of_service")
    await site.notify.wait_for(lambda m: "1 out of service" in m.get("STATUS", ""))
    await first.hang_up()
    assert site.line("line2").state == "idle"
    # the other line still answers and completes a call
    assert await call_and_press(rig, OTHER_CALLER) == "answered"
    await site.wait_line("line2", lambda ln: ln.state == "idle" and ln.calls_total == 1)
    calls = {c["line"]: c for c in (await site.ask("calls"))["calls"]}
    assert calls["line2"]["outcome"] == "no_debt"
    # the driver reports the dead port as the call ending, or as the line failing
    assert calls["line1"]["outcome"] in ("hung_up", "error")
    status = await site.ask("status")
    dead = status["lines"][0]
    assert dead["state"] == "out_of_service" and "PortError" in dead["last_error"]
    assert dead["retry_in"] is not None
    # the modem comes back: its line recovers by itself and takes calls again
    await rig.modems[0].reappear()
    await site.wait_line("line1", lambda ln: ln.state == "idle")
    await site.notify.wait_for(lambda m: m.get("STATUS", "").startswith("2 lines: 2 idle"))
    assert await call_and_press(rig, CALLER) == "answered"
    await site.wait_line("line1", lambda ln: ln.calls_total == 2 and ln.state == "idle")


async def test_busy_out_free_and_reset(site: Site) -> None:
    rig = site.rig
    busy = await site.ask("line.busy", line="line1")
    assert busy["ok"] and busy["line"]["state"] == "busy"
    assert rig.exchange.line_state(rig.lines[0]) != "idle"  # off hook: hunted past
    assert await call_and_press(rig, CALLER) == "answered"
    await site.wait_line("line2", lambda ln: ln.calls_total == 1 and ln.state == "idle")
    assert site.line("line1").calls_total == 0
    free = await site.ask("line.free", line="line1")
    assert free["line"]["state"] == "idle"
    assert rig.exchange.line_state(rig.lines[0]) == "idle"
    unknown = await site.ask("line.busy", line="line9")
    assert unknown == {
        "ok": False,
        "error": "unknown_line",
        "message": "no line named 'line9' (lines: line1, line2)",
    }
    # a reset refuses to cut a call unless forced
    phone = rig.phone(OTHER_CALLER)
    assert await phone.dial("1521") == "answered"
    in_call = next(ln.name for ln in site.daemon.supervisor.lines if ln.state == "in_call")
    refused = await site.ask("line.reset", line=in_call)
    assert refused["error"] == "in_call"
    forced = await site.ask("line.reset", line=in_call, force=True)
    assert forced["ok"] and forced["line"]["state"] == "idle"
    await phone.hang_up()
    reset = await site.ask("line.reset", line="line1")
    assert reset["line"]["state"] == "idle"


async def test_a_dead_line_task_stops_the_watchdog(site: Site) -> None:
    await site.notify.wait_for(lambda m: m.get("WATCHDOG") == "1")
    line = site.line("line2")
    assert line.task is not None
    line.task.cancel()
    await asyncio.gather(line.task, return_exceptions=True)
    assert not site.daemon.healthy()
    await asyncio.sleep(0.3)
    before = len(site.notify.seen("WATCHDOG"))
    await asyncio.sleep(0.5)
    assert len(site.notify.seen("WATCHDOG")) == before


async def test_drain_lets_a_call_finish(site: Site) -> None:
    phone = site.rig.phone(CALLER)
    assert await phone.dial("1521") == "answered"
    await site.wait_line("line1", lambda ln: ln.state == "in_call")
    stopping = asyncio.create_task(site.daemon.stop())
    await site.notify.wait_for(lambda m: m.get("STOPPING") == "1")
    assert site.notify.seen("EXTEND_TIMEOUT_USEC")
    await site.wait_line("line2", lambda ln: ln.state == "stopped")  # idle lines stop at once
    assert not stopping.done() and site.line("line1").state == "in_call"
    await phone.press("3")
    assert await asyncio.wait_for(stopping, 10) is True
    assert site.line("line1").state == "stopped"
    await phone.hang_up()


async def test_drain_cuts_a_call_still_running_at_the_bound(tmp_path: Path) -> None:
    async with running(tmp_path, drain=1.0) as site:
        phone = site.rig.phone(CALLER)
        assert await phone.dial("1521") == "answered"
        await site.wait_line("line1", lambda ln: ln.state == "in_call")
        assert await site.daemon.stop() is False
        assert site.line("line1").state == "stopped"
        await phone.hang_up()


async def test_a_mute_modem_is_found_by_the_health_check_and_recovers(tmp_path: Path) -> None:
    async with running(tmp_path, health_check=2.0) as site:
        site.rig.modems[1].stop_answering()
        await site.wait_line("line2", lambda ln: ln.state in ("recovering", "out_of_service"))
        assert "stopped answering" in (site.line("line2").last_error or "")
        assert site.line("line1").state == "idle"
        site.rig.modems[1].resume()
        await site.wait_line("line2", lambda ln: ln.state == "idle", timeout=15)


async def test_the_outbound_pool_lends_an_idle_outbound_line(tmp_path: Path) -> None:
    async with running(tmp_path, roles=["inbound", "outbound"]) as site:
        supervisor = site.daemon.supervisor
        assert supervisor is not None and supervisor.pool.free() == 1
        bank = site.rig.phone("02188889999")
        async with supervisor.pool.lease() as modem:
            assert modem is site.line("line2").modem
            assert site.line("line2").state == "in_call"
            async with supervisor.pool.lease() as none_left:
                assert none_left is None
            answer = asyncio.create_task(_answer_when_rung(bank))
            assert await modem.dial("02188889999") == "answered"
            await answer
        await site.wait_line("line2", lambda ln: ln.state == "idle")
        assert supervisor.pool.free() == 1
        await bank.hang_up()


async def _answer_when_rung(phone: Any) -> None:
    await phone.wait_for_ring(30)
    await phone.answer()


async def test_a_bad_reload_keeps_the_running_settings(site: Site) -> None:
    config_file = site.tmp / "daemon1521.toml"
    config_file.write_text(config_file.read_text() + "\n[ivr]\ntries = 0\n")
    reply = await site.ask("reload")
    assert reply["ok"] is False and reply["error"] == "bad_config"
    assert f"{config_file}: ivr.tries: must be at least 1" in reply["message"]
    assert site.notify.seen("RELOADING") and len(site.notify.seen("READY")) == 2
    config_file.write_text(config_file.read_text().replace("tries = 0", "tries = 5"))
    good = await site.ask("reload")
    assert good["ok"] and good["reloaded"]["prompts"] > 100
    assert site.daemon.supervisor.services.settings.tries == 5


async def test_a_second_stop_request_cuts_the_calls(site: Site) -> None:
    phone = site.rig.phone(CALLER)
    assert await phone.dial("1521") == "answered"
    await site.wait_line("line1", lambda ln: ln.state == "in_call")
    site.daemon.request_stop("SIGTERM")
    stopping = asyncio.create_task(site.daemon.stop())
    await site.notify.wait_for(lambda m: m.get("STOPPING") == "1")
    site.daemon.request_stop("SIGINT")
    assert await asyncio.wait_for(stopping, 10) is False
    await phone.hang_up()


PAID_CARD = "622106******1234"


class PayingCalls:
    """:func:`short_call` with a tone, then a declined and a paid attempt recorded."""

    async def take_call(self, call: Any) -> None:
        await short_call(call, prompt=None)
        bill = make_bill_id(12345678, 101)
        for result in ("declined_pin", "paid"):
            call.store.record_payment(
                call_id=call.call_id,
                bill_id=bill,
                payment_id=make_payment_id(bill, 90_000, 4, 12),
                amount=90_000,
                card_masked=PAID_CARD,
                result=result,
                tracking="100201" if result == "paid" else None,
            )


async def test_payments_are_listed_with_their_call_and_counted_today(tmp_path: Path) -> None:
    site = await make_site(tmp_path)
    site.daemon.handler = PayingCalls()
    try:
        await site.daemon.start()
        assert await call_and_press(site.rig, CALLER) == "answered"
        await site.wait_line("line1", lambda ln: ln.state == "idle" and ln.calls_total == 1)
        (record,) = (await site.ask("calls"))["calls"]
        assert [p["result"] for p in record["payments"]] == ["declined_pin", "paid"]
        assert {p["card"] for p in record["payments"]} == {PAID_CARD}
        stats = (await site.ask("stats"))["stats"]
        assert stats["payments_today"] == {"declined_pin": 1, "paid": 1}
        assert stats["calls_today"] == 1
    finally:
        await site.daemon.stop()
        await site.rig.stop()
        site.notify.close()
