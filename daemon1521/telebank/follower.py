"""Following the caller's keys through the bank's dialogue, to learn the card and nothing else.

The bank does the talking; 1521 only sees the keys go by. The follower keeps
the card-phase digits and learns the card only when they were exactly
``card.digits`` long, accepted by the caller with the confirm key, a valid
Shetab card (Luhn, no all-zero section, a known BIN) and accepted by the
bank (a machine result other than "card refused", or, without one, the PIN
phase completed and the bank not hanging up on the card). After the confirm
key nothing is held: PIN keys are counted, never kept. Anything unexpected
(``*``, a re-typed card, a key where the confirm key belongs) puts the
follower in doubt, and a follower in doubt learns nothing: a missed card is
a small loss, a PIN mistaken for a card is not.
"""

from __future__ import annotations

from enum import StrEnum

from daemon1521.billing.cards import BinTable, validate_card
from daemon1521.telebank.profile import TelebankProfile


class Phase(StrEnum):
    CARD = "card"
    CONFIRM = "confirm"
    """16 digits typed: the next key is the confirm key (or a rejection)."""
    PIN = "pin"
    AFTER_PIN = "after_pin"
    DOUBT = "doubt"


class CardFollower:
    """Sees each caller key as it is relayed; :meth:`learned` at the end."""

    def __init__(self, profile: TelebankProfile, bins: BinTable | None = None) -> None:
        self.profile = profile
        self.bins = bins
        self.phase = Phase.CARD
        self.pin_keys = 0
        """How many keys went by in the PIN phase (the keys themselves are not kept)."""
        self._digits: list[str] = []
        self._card: str | None = None
        self._remembered = False
        self._outcome: str | None = None

    def __repr__(self) -> str:
        return f"CardFollower(phase={self.phase}, pin_keys={self.pin_keys})"

    @property
    def in_pin(self) -> bool:
        """True while keys must be treated as PIN digits (and past it, to be safe)."""
        return self.phase in (Phase.PIN, Phase.AFTER_PIN, Phase.DOUBT)

    @property
    def pin_given(self) -> bool:
        """The PIN went to the bank in full (its end key, or its last digit): the
        payment may be under way."""
        return self.phase is Phase.AFTER_PIN

    def start_at_pin(self) -> None:
        """The daemon keyed a remembered card and its confirmation itself."""
        self._digits.clear()
        self._remembered = True
        self.phase = Phase.PIN

    def key(self, key: str) -> None:
        """One key the caller pressed, on its way to the bank."""
        if self.phase is Phase.CARD:
            if key.isdigit():
                self._digits.append(key)
                if len(self._digits) == self.profile.card.digits:
                    self.phase = Phase.CONFIRM
            else:
                self._doubt()  # "*" to correct, "#" early: not a clean card entry
        elif self.phase is Phase.CONFIRM:
            if key == self.profile.card.confirm_key:
                self._card = "".join(self._digits)
                self._digits.clear()
                self.phase = Phase.PIN
            else:
                self._doubt()  # read-back rejected: the card will be typed again
        elif self.phase is Phase.PIN:
            pin = self.profile.pin
            if pin.end_key and key == pin.end_key:
                self.phase = Phase.AFTER_PIN
            elif key.isdigit():
                self.pin_keys += 1
                if self.pin_keys > pin.max_digits:
                    self._doubt()  # more digits than a PIN: a re-typed card?
                elif not pin.end_key and self.pin_keys == pin.max_digits:
                    self.phase = Phase.AFTER_PIN
            else:
                self._doubt()
        elif self.phase is Phase.AFTER_PIN:
            self._doubt()  # the bank asked for more: we no longer know what it was

    def bank_result(self, outcome: str | None) -> None:
        """The bank's machine-result outcome (None: it ended without one)."""
        self._outcome = outcome

    def learned(self) -> str | None:
        """The card number the caller typed and the bank accepted, or None."""
        if self._remembered or self._card is None or self.phase is Phase.DOUBT:
            return None
        if self._outcome == "card_refused":
            return None
        if self._outcome is None:
            completed = self.phase is Phase.AFTER_PIN
            if not completed or self.pin_keys < self.profile.pin.min_digits:
                return None
        elif self.phase not in (Phase.PIN, Phase.AFTER_PIN):
            return None
        if not validate_card(self._card, self.bins).ok:
            return None
        return self._card

    def forget(self) -> None:
        """Drop everything (the leg is over)."""
        self._digits.clear()
        self._card = None
        self.pin_keys = 0

    def _doubt(self) -> None:
        self.phase = Phase.DOUBT
        self._digits.clear()
        self._card = None
