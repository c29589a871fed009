"""What of a call may leave the daemon: masked numbers and masked call records.

The control socket and the logs are read by operators who need to see that a
line is working, not who called or what they typed. A mobile number keeps
its first four digits (the operator prefix, useful for spotting a misrouted
trunk) and its last two, and no number shows more than half its digits.
Bill IDs keep their last four digits, enough to match a complaint against
the record; the log masks them by the same rule (``logs.mask_tail``) at
every level, DEBUG included. Card numbers never reach this module: the store only ever holds
them masked or encrypted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from daemon1521.billing.store import CallRecord, PaymentRecord
from daemon1521.logs import mask_cards, mask_tail

MASK = "*"
CALLER_SHOWN = 6
CALLER_TAIL = 2
BILL_TAIL = 4


def mask_caller(number: str | None) -> str | None:
    """``09121234567`` -> ``0912*****67``: at most six digits shown, never more than half."""
    if not number:
        return None
    digits = str(number)
    hidden = max(len(digits) - CALLER_SHOWN, len(digits) // 2, 1)
    tail = min(CALLER_TAIL, len(digits) - hidden)
    head = len(digits) - hidden - tail
    return digits[:head] + MASK * hidden + digits[len(digits) - tail :]


def mask_bill_id(bill_id: str | None) -> str | None:
    """``1234567890123`` -> ``*********0123``."""
    if not bill_id:
        return None
    return mask_tail(str(bill_id), BILL_TAIL)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def call_record(record: CallRecord) -> dict[str, Any]:
    """A call record as the control socket shows it: nothing a caller typed in clear."""
    duration = None
    if record.ended_at is not None:
        duration = round((record.ended_at - record.started_at).total_seconds(), 1)
    return {
        "id": record.id,
        "line": record.line,
        "caller": mask_caller(record.caller_number),
        "started_at": _iso(record.started_at),
        "answered_at": _iso(record.answered_at),
        "ended_at": _iso(record.ended_at),
        "duration": duration,
        "states": list(record.states),
        "last_state": record.last_state,
        "bill_id": mask_bill_id(record.bill_id),
        "amount": record.amount_announced,
        "outcome": record.outcome,
        "reason": mask_cards(record.reason) if record.reason else None,
    }


def payment_record(record: PaymentRecord) -> dict[str, Any]:
    """A payment attempt as the control socket shows it: the card masked, no payment ID."""
    return {
        "id": record.id,
        "bill_id": mask_bill_id(record.bill_id),
        "amount": record.amount,
        "card": mask_cards(record.card_masked) if record.card_masked else None,
        "result": record.result,
        "tracking": record.tracking,
        "started_at": _iso(record.started_at),
        "ended_at": _iso(record.ended_at),
    }
