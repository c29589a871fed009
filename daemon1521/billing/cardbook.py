"""Remembered cards as the call flow sees them: the store's rows through the vault.

When the vault is unavailable (no key, wrong key) the book is *off*: it
offers no remembered card and remembers nothing, and the rows already stored
are left untouched. A card that does not open is skipped for that call (and
the operator told), never deleted.

The book reads through the daemon's :class:`AsyncStore` (awaited, off the
event loop) and queues its writes, so a call never waits on SQLite.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from loguru import logger

from daemon1521.billing.async_store import AsyncStore
from daemon1521.billing.cards import mask_card
from daemon1521.billing.store import StoreUnavailable
from daemon1521.billing.vault import CardUnreadable, Vault, VaultUnavailable, open_vault


@dataclass(frozen=True)
class KnownCard:
    """A remembered card opened for one call; ``number`` stays out of ``repr``."""

    masked: str
    number: str = field(repr=False)


class CardBook:
    """Remembering and using cards; ``problem`` says why it is off (None when on)."""

    def __init__(self, store: AsyncStore, vault: Vault | None, problem: str | None = None) -> None:
        self.store = store
        self.vault = vault
        self.problem = problem if vault is None else None

    @classmethod
    async def open(cls, store: AsyncStore, key_file: str | Path) -> CardBook:
        """The book with the vault key at ``key_file`` (created on first start)."""
        stored = [card.ciphertext for _, card in await store.remembered_card_list()]
        try:
            vault = open_vault(key_file, stored)  # a small key file, read once at start
        except VaultUnavailable as exc:
            logger.error("card vault: {}", exc)
            return cls(store, None, str(exc))
        return cls(store, vault)

    @property
    def on(self) -> bool:
        return self.vault is not None

    async def card_for(self, caller: str | None) -> KnownCard | None:
        """The caller's remembered card, or None (book off, none stored, or unreadable)."""
        if self.vault is None or caller is None:
            return None
        try:
            row = await self.store.remembered_card(caller)
        except StoreUnavailable as exc:  # the caller can still pay with a card typed in
            logger.error("card vault: the remembered card cannot be read: {}", exc)
            return None
        if row is None:
            return None
        try:
            number = self.vault.open_card(row.ciphertext, caller)
        except CardUnreadable as exc:
            logger.error(
                "card vault: the card remembered as {} cannot be used: {}", row.masked, exc
            )
            return None
        return KnownCard(row.masked, number)

    def remember(self, caller: str, number: str) -> bool:
        """Seal ``number`` for ``caller`` and queue it; False when the book is off."""
        if self.vault is None:
            logger.warning("card vault is off; card not remembered: {}", self.problem)
            return False
        self.store.remember_card(caller, self.vault.seal(number, caller), mask_card(number))
        return True

    def forget(self, caller: str) -> None:
        """Queue dropping the caller's remembered card (works with the book off:
        nothing is read)."""
        self.store.forget_card(caller)
