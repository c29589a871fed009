"""What the call flow needs to take a payment: the bank leg and the remembered cards.

Built once by the daemon (profile, outbound lease, card book) and handed to
each call's flow, which stays free of modems and profiles.
"""

from __future__ import annotations

from daemon1521.billing.cardbook import CardBook
from daemon1521.telebank.leg import LEAD, BankLeg, CallerLine, Lease, LegResult, Prompts
from daemon1521.telebank.profile import TelebankProfile


class PaymentDesk:
    """Runs a bank leg for a call; ``cards`` is None when cards cannot be remembered."""

    def __init__(
        self,
        lease: Lease,
        profile: TelebankProfile,
        prompts: Prompts,
        cards: CardBook | None = None,
        *,
        time_scale: float = 1.0,
        lead: float = LEAD,
    ) -> None:
        self.lease = lease
        self.profile = profile
        self.prompts = prompts
        self.cards = cards if cards is not None and cards.on else None
        self.time_scale = time_scale
        self.lead = lead

    async def pay(
        self,
        line: CallerLine,
        bill_id: str,
        payment_id: str,
        card: str | None = None,
        name: str = "bank leg",
    ) -> LegResult:
        leg = BankLeg(
            line,
            self.lease,
            self.profile,
            self.prompts,
            name=name,
            time_scale=self.time_scale,
            lead=self.lead,
        )
        return await leg.run(bill_id, payment_id, card)
