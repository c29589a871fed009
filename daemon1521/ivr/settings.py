"""What an operator may tune in the 1521 call flow: timeouts, tries, how money is spoken.

One frozen msgspec Struct: its fields are the ``[ivr]`` table's keys, their
types and ``msgspec.Meta`` limits are the checks (the config reader derives
nothing by hand), and each field's ``description`` says what the key does.
:meth:`IvrSettings.from_mapping` is the one way from a table to settings, so
a flow never sees a half-checked value.

Durations are seconds of line time; an emulated line running faster than real
time divides them by its time scale, not this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from daemon1521.schema import SchemaError, convert, refuse_non_finite, shown

Unit = Literal["rial", "toman"]
UNITS: tuple[str, ...] = ("rial", "toman")
DTMF_KEYS = "0123456789*#"
MIN_BILL_DIGITS = 6
MAX_BILL_DIGITS = 13
"""The bill-ID standard allows 6 to 13 digits; bills print (and callers type) 13."""

Tries = Annotated[int, msgspec.Meta(ge=1, le=10)]
Digits = Annotated[int, msgspec.Meta(ge=1, le=MAX_BILL_DIGITS)]
KeyWait = Annotated[float, msgspec.Meta(ge=0.5)]


def _doc(text: str) -> msgspec.Meta:
    return msgspec.Meta(description=text)


class IvrSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The 1521 flow's tunables; defaults are CALLFLOW.md's."""

    first_digit_timeout: Annotated[
        KeyWait, _doc("seconds to wait for the first key of an answer")
    ] = 8.0
    inter_digit_timeout: Annotated[
        KeyWait, _doc("seconds to wait between the keys of a number")
    ] = 5.0
    tries: Annotated[Tries, _doc("silent tries of one question before goodbye")] = 3
    invalid_tries: Annotated[Tries, _doc("invalid answers to one question before goodbye")] = 3
    not_found_tries: Annotated[Tries, _doc("bill IDs not found in one call before goodbye")] = 3
    unit: Annotated[Unit, _doc("currency the debt is spoken in")] = "rial"
    formal_hundred: Annotated[bool, _doc("say یکصد rather than صد")] = False
    formal_thousand: Annotated[bool, _doc("say یک هزار rather than هزار")] = False
    max_call_seconds: Annotated[
        float,
        msgspec.Meta(
            ge=30.0, description="hard cap on a call's length, for hang-ups never detected"
        ),
    ] = 600.0
    bill_min_digits: Annotated[Digits, _doc("fewest digits a typed bill ID may have")] = (
        MIN_BILL_DIGITS
    )
    bill_max_digits: Annotated[Digits, _doc("most digits a typed bill ID may have")] = (
        MAX_BILL_DIGITS
    )
    yes_key: Annotated[str, _doc("the key that answers yes")] = "1"
    remember_bills: Annotated[
        bool, _doc("offer callers with caller ID to remember their bill ID")
    ] = True

    @classmethod
    def from_mapping(
        cls, data: Any, where: str = "ivr", path: Path | str | None = None
    ) -> IvrSettings:
        """Settings from a table (a config file's ``[ivr]``).

        Raises :class:`~daemon1521.schema.SchemaError` (a ValueError) naming
        ``path`` (when given) and ``where.key``.
        """
        if isinstance(data, Mapping):
            data = dict(data)
        refuse_non_finite(data, path, where)
        settings = convert(data, cls, path=path, key=where, strict=True)
        settings._check(path, where)
        return settings

    def _check(self, path: Path | str | None, where: str) -> None:
        """What one field's type cannot say: the yes key, and the digit bounds together."""
        if len(self.yes_key) != 1 or self.yes_key not in DTMF_KEYS:
            raise SchemaError(
                path,
                f"{where}.yes_key",
                f"expected one telephone key (0-9, * or #), got {shown(self.yes_key)}",
            )
        if self.bill_min_digits > self.bill_max_digits:
            raise SchemaError(
                path,
                f"{where}.bill_min_digits",
                f"{self.bill_min_digits} must not exceed bill_max_digits ({self.bill_max_digits})",
            )

    def as_dict(self) -> dict[str, Any]:
        return msgspec.structs.asdict(self)
