"""One 1521 line on the emulator, served by the daemon itself: the test bed's site.

The demo, the end-to-end tests and the load benchmark use it; it sits above
both the daemon and the emulator, so neither has to import the other.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

from daemon1521.audio.prompts import PromptLibrary
from daemon1521.billing.ids import make_bill_id, make_payment_id
from daemon1521.billing.store import CallRecord, Store
from daemon1521.config import ControlConfig, LineConfig, TelebankConfig, default_config
from daemon1521.daemon.app import Daemon
from daemon1521.daemon.notify import Notifier
from daemon1521.daemon.supervisor import Line as SupervisedLine
from daemon1521.emulator.bank import TelephoneBank
from daemon1521.emulator.bank_voice import bank_voice
from daemon1521.emulator.exchange import Presentation
from daemon1521.emulator.rig import Rig
from daemon1521.ivr.settings import IvrSettings
from daemon1521.telebank.profile import load_profile
from daemon1521.testbed.caller import Caller
from daemon1521.testbed.ears import Ears

DEFAULT_PERSONALITY = "conexant-cx93001"
DEMO_CALLER = "02166554433"


@dataclass(frozen=True)
class DemoBill:
    """A bill to seed a store with."""

    bill_id: str
    payment_id: str
    amount_rials: int


def sample_bills() -> list[DemoBill]:
    """A few valid electricity bills: one with a debt, one paid up, one more."""
    bills = []
    for file_code, company, amount in (
        (12345678, 101, 2_345_000),
        (4321, 101, 0),
        (8765432, 205, 480_000),
    ):
        bill_id = make_bill_id(file_code, company)
        payment_id = make_payment_id(bill_id, amount, 4, 12)
        bills.append(DemoBill(bill_id, payment_id, amount))
    return bills


class EmulatedSite:
    """One 1521 line on the emulator, served by the daemon itself.

    The same :class:`~daemon1521.daemon.app.Daemon` that ``daemon1521 run
    --emulated 1`` starts supervises the line: its supervisor, attendant and
    store take the calls, its driver talks to an emulated modem over a pty.
    ``store_path`` is created if missing and seeded with ``bills``; exit stops
    the daemon (draining a call in progress) and the emulator.

    The daemon runs on the exchange's clock: ``speed`` emulated seconds per
    real second, or (None, the default) as fast as the host allows. Without
    ``telebank`` the daemon has no bank leg: payment is "not available"; with
    it, the emulated telephone bank (:attr:`bank`) answers the shipped
    profile's number, and ``outbound`` more modems are the daemon's lines
    to it.
    """

    def __init__(
        self,
        store_path: Path,
        *,
        prompts: PromptLibrary | None = None,
        bills: Sequence[DemoBill] = (),
        speed: float | None = None,
        personality: str = DEFAULT_PERSONALITY,
        settings: IvrSettings | None = None,
        ears: Ears | None = None,
        lines: int = 1,
        personalities: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        telebank: bool = False,
        outbound: int = 0,
    ) -> None:
        if ears is None:
            if prompts is None:
                raise ValueError("an emulated site needs the prompts or ears that know them")
            ears = Ears(prompts, [bank_voice()] if telebank else [])
        self.speed = speed
        self.personality = personality
        self.ears = ears
        self.listening: Executor | None = None  # the daemon shares this loop: hear in it
        self._scratch = tempfile.TemporaryDirectory(prefix="daemon1521-site-")
        scratch = Path(self._scratch.name)  # short: a Unix socket path has a length limit
        self.inbound = lines
        self.rig = Rig(
            lines,
            personalities or [personality],
            speed=speed,
            link_dir=scratch,
            outbound=outbound,
        )
        self.bank: TelephoneBank | None = None
        if telebank:
            self.bank = TelephoneBank.on_exchange(self.rig.exchange, load_profile().dial.number)
        with Store.open(store_path) as store:
            store.upsert_bills(
                {"bill_id": b.bill_id, "payment_id": b.payment_id, "amount_rials": b.amount_rials}
                for b in bills
            )
        self.config = default_config(
            store=store_path,
            ivr=settings or IvrSettings(),
            control=ControlConfig(socket=scratch / "control.sock"),
            telebank=TelebankConfig(enabled=telebank),
        )
        self.env = env
        """The daemon's environment (NOTIFY_SOCKET, WATCHDOG_USEC); None: no systemd."""
        self.daemon: Daemon | None = None
        self._records: Store | None = None
        self._hold: Callable[[], int] | None = None
        self._closed = False

    async def __aenter__(self) -> EmulatedSite:
        try:
            await self.rig.start()
            if self.bank is not None:
                self.bank.start()
            lines = [
                LineConfig(
                    name=f"line{index + 1}" if index < self.inbound else f"bank{index + 1}",
                    port=str(modem.link),
                    label=personality,
                    role="inbound" if index < self.inbound else "outbound",
                )
                for index, (modem, personality) in enumerate(
                    zip(self.rig.modems, self.rig.personalities, strict=True)
                )
            ]
            notifier = Notifier(None) if self.env is None else Notifier.from_env(self.env)
            self.daemon = Daemon(
                self.config,
                clock=self.rig.clock,
                lines=lines,
                notifier=notifier,
                env=self.env if self.env is not None else {},
            )
            await self.daemon.start()
            if self.daemon.store is not None:
                # the line clock waits for the daemon's database reads (real time)
                self._hold = self.daemon.store.reads_in_flight
                self.rig.clock.add_hold(self._hold)
            self._records = Store.open(self.config.store)
            for index in range(len(lines)):
                await self.wait_idle(line=index)
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop the daemon and the emulator. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._hold is not None:
            self.rig.clock.remove_hold(self._hold)
            self._hold = None
        if self.daemon is not None:
            await self.daemon.stop()
            self.daemon = None
        if self._records is not None:
            self._records.close()
            self._records = None
        if self.bank is not None:
            await self.bank.stop()
        await self.rig.stop()
        self._scratch.cleanup()

    @property
    def lines(self) -> list[SupervisedLine]:
        assert self.daemon is not None and self.daemon.supervisor is not None
        return self.daemon.supervisor.lines

    @property
    def line(self) -> SupervisedLine:
        return self.lines[0]

    @property
    def store(self) -> Store:
        """The site's own connection to the daemon's database, for a test or
        the demo to seed and read directly (the daemon writes through its queue)."""
        assert self._records is not None
        return self._records

    def settle(self, timeout: float = 10.0) -> bool:
        """Wait until the daemon's queued writes are in the database."""
        assert self.daemon is not None and self.daemon.store is not None
        return self.daemon.store.wait_written(timeout)

    @property
    def line_state(self) -> str:
        """The exchange's state of the modem's line (``idle`` once on hook)."""
        return self.rig.exchange.line_state(self.rig.lines[0])

    async def wait_idle(self, calls: int = 0, timeout: float = 60.0, line: int = 0) -> None:
        """Wait until a line (the first) waits for a ring again after ``calls`` calls,
        at most ``timeout`` emulated seconds."""
        supervised = self.lines[line]

        def idle(line: SupervisedLine) -> bool:
            return line.state == "idle" and line.calls_total >= calls

        clock = self.rig.clock
        async with clock.timeout(timeout):
            while not idle(supervised):
                await supervised.next_change()

    def caller(self, number: str, presentation: Presentation = "number") -> Caller:
        return Caller(self, self.rig.phone(number, presentation))

    def last_call(self) -> CallRecord:
        self.settle()
        calls = self.store.recent_calls(limit=1)
        if not calls:
            raise LookupError("no call recorded")
        return calls[0]
