"""What an operator may tune in the 1521 call flow: timeouts, tries, how money is spoken.

One frozen dataclass, so the daemon's config reader can derive the ``[ivr]``
table's keys, types and limits from its fields (``metadata`` carries ``doc``,
``min`` and ``max``), and so a flow can never see a half-checked value: the
constructor itself refuses a bad one with a :class:`ValueError` whose message
starts with the offending key's name.

Durations are seconds of line time; an emulated line running faster than real
time divides them by its time scale, not this module.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Unit = Literal["rial", "toman"]
UNITS: tuple[str, ...] = ("rial", "toman")
DTMF_KEYS = "0123456789*#"
MIN_BILL_DIGITS = 6
MAX_BILL_DIGITS = 13
"""The bill-ID standard allows 6 to 13 digits; bills print (and callers type) 13."""


def _meta(doc: str, **limits: float) -> dict[str, Any]:
    return {"doc": doc, **limits}


@dataclass(frozen=True)
class IvrSettings:
    """The 1521 flow's tunables; defaults are CALLFLOW.md's."""

    first_digit_timeout: float = field(
        default=8.0, metadata=_meta("seconds to wait for the first key of an answer", min=0.5)
    )
    inter_digit_timeout: float = field(
        default=5.0, metadata=_meta("seconds to wait between the keys of a number", min=0.5)
    )
    tries: int = field(
        default=3, metadata=_meta("silent tries of one question before goodbye", min=1, max=10)
    )
    invalid_tries: int = field(
        default=3, metadata=_meta("invalid answers to one question before goodbye", min=1, max=10)
    )
    not_found_tries: int = field(
        default=3,
        metadata=_meta("bill IDs not found in one call before goodbye", min=1, max=10),
    )
    unit: Unit = field(default="rial", metadata=_meta("currency the debt is spoken in"))
    formal_hundred: bool = field(default=False, metadata=_meta("say یکصد rather than صد"))
    formal_thousand: bool = field(default=False, metadata=_meta("say یک هزار rather than هزار"))
    max_call_seconds: float = field(
        default=600.0,
        metadata=_meta("hard cap on a call's length, for hang-ups never detected", min=30.0),
    )
    bill_min_digits: int = field(
        default=MIN_BILL_DIGITS,
        metadata=_meta("fewest digits a typed bill ID may have", min=1, max=MAX_BILL_DIGITS),
    )
    bill_max_digits: int = field(
        default=MAX_BILL_DIGITS,
        metadata=_meta("most digits a typed bill ID may have", min=1, max=MAX_BILL_DIGITS),
    )
    yes_key: str = field(default="1", metadata=_meta("the key that answers yes"))
    remember_bills: bool = field(
        default=True, metadata=_meta("offer callers with caller ID to remember their bill ID")
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            kind = f.type
            if kind in ("float", float):
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ValueError(f"{f.name} must be a number of seconds, not {value!r}")
                object.__setattr__(self, f.name, float(value))
            elif kind in ("int", int):
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ValueError(f"{f.name} must be an integer, not {value!r}")
            elif kind in ("bool", bool) and not isinstance(value, bool):
                raise ValueError(f"{f.name} must be true or false, not {value!r}")
            value = getattr(self, f.name)
            for bound, ok in (("min", operator.ge), ("max", operator.le)):
                limit = f.metadata.get(bound)
                if limit is not None and isinstance(value, int | float) and not ok(value, limit):
                    word = "at least" if bound == "min" else "at most"
                    raise ValueError(f"{f.name} must be {word} {limit:g}, not {value!r}")
        if self.unit not in UNITS:
            raise ValueError(f"unit must be one of {', '.join(UNITS)}, not {self.unit!r}")
        if not isinstance(self.yes_key, str) or len(self.yes_key) != 1:
            raise ValueError(f"yes_key must be one telephone key, not {self.yes_key!r}")
        if self.yes_key not in DTMF_KEYS:
            raise ValueError(f"yes_key must be one of {DTMF_KEYS}, not {self.yes_key!r}")
        if self.bill_min_digits > self.bill_max_digits:
            raise ValueError(
                f"bill_min_digits ({self.bill_min_digits}) must not exceed "
                f"bill_max_digits ({self.bill_max_digits})"
            )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "ivr") -> IvrSettings:
        """Settings from a table (a config file's ``[ivr]``); errors name ``where.key``."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{where} must be a table, not {data!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise ValueError(
                f"{where}.{unknown[0]}: unknown setting (known: {', '.join(sorted(known))})"
            )
        try:
            return cls(**dict(data))
        except ValueError as exc:
            raise ValueError(f"{where}.{exc}") from None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
