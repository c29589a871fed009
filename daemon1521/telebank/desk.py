"""What the call flow needs to take a payment: the bank leg and the remembered cards.

Built once by the daemon (profile, outbound lease, card book) and handed to
each call's flow, which stays free of modems and profiles.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from daemon1521.billing.async_store import AsyncStore
from daemon1521.billing.cardbook import CardBook
from daemon1521.clock import Clock
from daemon1521.telebank.leg import LEAD, BankLeg, CallerLine, Lease, LegResult, Prompts
from daemon1521.telebank.profile import TelebankProfile, load_profile


class PaymentDesk:
    """Runs a bank leg for a call; ``cards`` is None when cards cannot be remembered."""

    def __init__(
        self,
        lease: Lease,
        profile: TelebankProfile,
        prompts: Prompts,
        cards: CardBook | None = None,
        *,
        clock: Clock | None = None,
        lead: float = LEAD,
    ) -> None:
        self.lease = lease
        self.profile = profile
        self.prompts = prompts
        self.cards = cards if cards is not None and cards.on else None
        self.clock = clock
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
            clock=self.clock,
            lead=self.lead,
        )
        return await leg.run(bill_id, payment_id, card)


@dataclass(frozen=True)
class Telebank:
    """What the daemon sets up once for the bank leg: the profile and the card book."""

    profile: TelebankProfile
    cards: CardBook | None

    @classmethod
    async def open(cls, profile: str, store: AsyncStore, vault_key: Path) -> Telebank:
        """Load the profile (SchemaError if bad) and open the card book (off, with an
        error logged, if the vault key is missing or wrong)."""
        return cls(load_profile(profile), await CardBook.open(store, vault_key))

    def desk(
        self, lease: Lease, prompts: Prompts, clock: Clock | None = None, lead: float = LEAD
    ) -> PaymentDesk:
        return PaymentDesk(lease, self.profile, prompts, self.cards, clock=clock, lead=lead)
