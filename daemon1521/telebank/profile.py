"""Telebank profiles: how to reach and drive one bank's telephone bank, as data.

A profile names the number and dial retries, the navigation after answer
(waits and keys, with ``{bill_id}`` and ``{payment_id}``), the dialogue the
caller's digits are followed through (card, confirm key, PIN), and how the
end is known (hang-up, silence, an optional in-band machine result of
``A``-``D`` digits). Profiles ship in this package (``profiles/``); an
operator may point the config's ``[telebank] profile`` at their own file.
A bad profile is refused with its file, key and value.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from pathlib import Path
from typing import Literal

import msgspec

from daemon1521.schema import SchemaError, convert, parse_toml, read_toml

DEFAULT_PROFILE = "parsian"
DTMF_KEYS = "0123456789*#ABCD"
CALLER_KEYS = "0123456789*#"
VARIABLES = ("bill_id", "payment_id")
OUTCOMES = ("paid", "declined_pin", "insufficient_funds", "card_refused")
"""What a machine-result code may mean (the payment outcomes the bank can report)."""
_FIELD = re.compile(r"\{([^{}]*)\}")


class Dial(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    number: str
    attempts: int = 3
    """Dial attempts in all (busy, no answer, no dial tone are retried)."""
    retry_pause: float = 5.0
    answer_timeout: float = 45.0


class Step(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One navigation step: wait for the bank to be silent (up to ``wait``
    seconds, at least ``quiet`` seconds of silence), then send ``send``."""

    wait: float = 0.0
    quiet: float = 0.0
    send: str = ""


class Card(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    digits: int = 16
    confirm_key: str = "1"
    """The key that accepts the bank's read-back of the card number."""
    reask: Literal["card", "end"] = "card"
    """What the bank does after a refused card or read-back: ask for the card
    again, or end the call."""


class Pin(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    min_digits: int = 5
    max_digits: int = 12
    end_key: str = "#"
    """The key that ends the PIN; "" when the bank counts ``max_digits``."""


class Result(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The in-band machine result: ``start``, a code digit, digits (the
    tracking number), ``end``. ``codes`` maps a code to an outcome."""

    start: str = "A"
    end: str = "#"
    codes: dict[str, str] = msgspec.field(
        default_factory=lambda: {
            "0": "paid",
            "1": "declined_pin",
            "2": "insufficient_funds",
            "3": "card_refused",
        }
    )


class End(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    silence: float = 20.0
    """Seconds the bank may stay silent before the leg is taken to be over."""
    machine_result: bool = True
    result: Result = Result()


class TelebankProfile(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: str
    dial: Dial
    name_fa: str = ""
    assumed: bool = False
    """True while the dialogue is an assumption not yet checked against the bank."""
    navigate: tuple[Step, ...] = ()
    card: Card = Card()
    pin: Pin = Pin()
    end: End = End()
    path: str = ""
    """Where the profile was read from (set by the loader)."""

    def keys_for(self, step: Step, bill_id: str, payment_id: str) -> str:
        """A step's keys with the variables filled in."""
        return step.send.format(bill_id=bill_id, payment_id=payment_id)


def load_profile(source: str | Path | None = None) -> TelebankProfile:
    """A shipped profile by name (``parsian``), or the operator's file by path."""
    name = str(source) if source is not None else DEFAULT_PROFILE
    if "/" not in name and not name.endswith(".toml"):
        return _shipped(name)
    path = Path(name)
    return _checked(convert(read_toml(path), TelebankProfile, path=path), path)


def shipped_profiles() -> list[str]:
    folder = resources.files("daemon1521.telebank").joinpath("profiles")
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


@functools.cache
def _shipped(name: str) -> TelebankProfile:
    if name not in shipped_profiles():
        known = ", ".join(shipped_profiles())
        raise SchemaError(None, "", f"no shipped profile {name!r} (known: {known})")
    resource = resources.files("daemon1521.telebank").joinpath("profiles", f"{name}.toml")
    where = f"telebank/profiles/{name}.toml"
    data = parse_toml(resource.read_bytes(), where)
    return _checked(convert(data, TelebankProfile, path=where), where)


def _checked(profile: TelebankProfile, path: Path | str) -> TelebankProfile:
    def bad(key: str, value: object, problem: str) -> SchemaError:
        return SchemaError(path, key, f"{value!r}: {problem}")

    dial = profile.dial
    if not dial.number or any(c not in "0123456789*#,W" for c in dial.number):
        raise bad("dial.number", dial.number, "a dial string is digits, * # and , pauses")
    if not 1 <= dial.attempts <= 10:
        raise bad("dial.attempts", dial.attempts, "must be 1 to 10")
    for key, value, top in (
        ("dial.retry_pause", dial.retry_pause, 600.0),
        ("dial.answer_timeout", dial.answer_timeout, 300.0),
        ("end.silence", profile.end.silence, 600.0),
    ):
        if not 0 < value <= top:
            raise bad(key, value, f"must be more than 0 and at most {top:g} seconds")
    for i, step in enumerate(profile.navigate):
        where = f"navigate.{i}"
        if not 0 <= step.wait <= 120 or not 0 <= step.quiet <= 30:
            raise bad(f"{where}.wait", step.wait, "waits are 0-120 s, quiet 0-30 s")
        fields = _FIELD.findall(step.send)
        for name in fields:
            if name not in VARIABLES:
                raise bad(f"{where}.send", step.send, f"unknown variable {{{name}}}")
        plain = _FIELD.sub("", step.send)
        if any(c not in DTMF_KEYS for c in plain) or "{" in plain or "}" in plain:
            raise bad(f"{where}.send", step.send, "keys are 0-9 * # A-D and {bill_id}/{payment_id}")
    card = profile.card
    if card.digits != 16:
        raise bad("card.digits", card.digits, "Shetab cards have 16 digits")
    if len(card.confirm_key) != 1 or card.confirm_key not in CALLER_KEYS:
        raise bad("card.confirm_key", card.confirm_key, "one key of 0-9 * #")
    pin = profile.pin
    if not 4 <= pin.min_digits <= pin.max_digits <= 16:
        raise bad("pin.max_digits", pin.max_digits, "need 4 <= min_digits <= max_digits <= 16")
    if pin.end_key not in ("", "#", "*"):
        raise bad("pin.end_key", pin.end_key, 'the PIN ends with "#", "*" or "" (a count)')
    result = profile.end.result
    if len(result.start) != 1 or result.start not in "ABCD":
        raise bad("end.result.start", result.start, "one of A B C D (no caller can key those)")
    if len(result.end) != 1 or result.end not in DTMF_KEYS or result.end.isdigit():
        raise bad("end.result.end", result.end, "one non-digit key")
    for code, outcome in result.codes.items():
        if len(code) != 1 or not code.isdigit():
            raise bad(f"end.result.codes.{code}", code, "a code is one digit")
        if outcome not in OUTCOMES:
            raise bad(f"end.result.codes.{code}", outcome, f"one of {', '.join(OUTCOMES)}")
    return msgspec.structs.replace(profile, path=str(path))
