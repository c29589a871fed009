"""Loading bills exported by the utility's billing system.

Input is CSV with a header row, or JSON lines (one object per line), with the
columns ``bill_id``, ``payment_id`` and ``amount`` (rials). Every row is
validated: the bill ID must be a valid electricity bill ID, the payment ID
must belong to it, and an amount given alongside must equal the amount the
payment ID carries. ``amount`` may be left out wherever the payment ID gives
it; ``payment_id`` may be left out only for a bill with no debt (amount 0),
which has nothing to pay. A bill ID given twice in one file is rejected at
its second appearance.

The good rows are loaded in one transaction (all or nothing if the store
fails), each bad row is reported with its line number and reason, and
re-running an import changes nothing (rows equal to what is stored are left
untouched and counted as unchanged).
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from daemon1521.billing.ids import (
    clean_digits,
    validate_bill_id,
    validate_payment_id,
)
from daemon1521.billing.store import Store, UpsertCounts

Format = Literal["auto", "csv", "jsonl"]
JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson", ".json"})
CSV_DELIMITERS = ",;\t"
MAX_IMPORT_BYTES = 256 << 20
"""The largest file read: millions of bills, and a bound for a file that never ends."""
# Header names accepted for each column (compared case-insensitively, with
# spaces and hyphens read as underscores), English and Persian.
COLUMN_ALIASES: dict[str, frozenset[str]] = {
    "bill_id": frozenset({"bill_id", "billid", "bill", "شناسه_قبض"}),
    "payment_id": frozenset({"payment_id", "paymentid", "payment", "شناسه_پرداخت"}),
    "amount": frozenset({"amount", "amount_rials", "rials", "مبلغ", "مبلغ_ریال"}),
}
MAX_AMOUNT_DIGITS = 15
"""Longer amounts are refused before any int conversion: Python's digit limit
(4,300) would otherwise turn one hostile row into an exception."""
SHOWN_CHARS = 32
"""How much of a bad value a rejection quotes; the rest is counted, not echoed."""


class ImportFileError(Exception):
    """The file as a whole cannot be imported (unreadable, no header, ...)."""


@dataclass(frozen=True)
class Rejection:
    line: int
    code: str
    message: str

    def as_dict(self) -> dict[str, object]:
        return {"line": self.line, "code": self.code, "message": self.message}


@dataclass(frozen=True)
class GoodRow:
    line: int
    bill_id: str
    payment_id: str | None
    amount_rials: int


@dataclass
class ImportReport:
    source: str
    rows: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    counts: UpsertCounts = field(default_factory=UpsertCounts)
    dry_run: bool = False

    @property
    def accepted(self) -> int:
        return self.rows - len(self.rejected)

    @property
    def ok(self) -> bool:
        return not self.rejected

    def summary(self) -> str:
        loaded = (
            f"{self.accepted} valid (not loaded: dry run)"
            if self.dry_run
            else f"{self.accepted} loaded ({self.counts.inserted} new, "
            f"{self.counts.updated} changed, {self.counts.unchanged} unchanged)"
        )
        return f"{self.source}: {self.rows} rows, {loaded}, {len(self.rejected)} rejected"

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.source,
            "rows": self.rows,
            "accepted": self.accepted,
            "dry_run": self.dry_run,
            "inserted": self.counts.inserted,
            "updated": self.counts.updated,
            "unchanged": self.counts.unchanged,
            "rejected": [r.as_dict() for r in self.rejected],
        }


def check_row(line: int, row: dict[str, Any]) -> GoodRow | Rejection:
    """Validate one input row (values as read: strings, or numbers from JSON)."""
    bill_raw, payment_raw, amount_raw = (
        _text(row.get(name)) for name in ("bill_id", "payment_id", "amount")
    )
    if bill_raw is None:
        return Rejection(line, "row.bill_id_missing", "no bill ID")
    if bill_raw is False or payment_raw is False or amount_raw is False:
        return Rejection(line, "row.bad_value", "values must be text or whole numbers")
    bill = validate_bill_id(bill_raw, electricity_only=True)
    if not bill.ok:
        assert bill.reason is not None
        return Rejection(line, bill.reason.code, f"bill ID {_shown(bill_raw)}: {bill.reason.text}")
    assert bill.bill_id is not None
    amount: int | None = None
    if amount_raw is not None:
        digits = clean_digits(amount_raw)
        if digits is None:
            return Rejection(
                line,
                "row.amount_invalid",
                f"amount {_shown(amount_raw)!r} is not a whole number of rials",
            )
        if len(digits.lstrip("0")) > MAX_AMOUNT_DIGITS:
            return Rejection(
                line,
                "row.amount_invalid",
                f"amount {_shown(amount_raw)!r} has more than {MAX_AMOUNT_DIGITS} digits",
            )
        amount = int(digits)
    if payment_raw is None:
        if amount is None:
            return Rejection(line, "row.payment_id_missing", "no payment ID and no amount")
        if amount != 0:
            return Rejection(
                line, "row.payment_id_missing", "no payment ID for a bill with a debt to pay"
            )
        return GoodRow(line, bill.bill_id, None, 0)
    payment = validate_payment_id(bill.bill_id, payment_raw)
    if not payment.ok:
        assert payment.reason is not None
        return Rejection(
            line, payment.reason.code, f"payment ID {_shown(payment_raw)}: {payment.reason.text}"
        )
    assert payment.amount_rials is not None
    if amount is not None and amount != payment.amount_rials:
        return Rejection(
            line,
            "row.amount_mismatch",
            f"amount {amount:,} rials disagrees with the payment ID's "
            f"{payment.amount_rials:,} rials",
        )
    return GoodRow(line, bill.bill_id, payment.payment_id, payment.amount_rials)


def _text(value: Any) -> str | Literal[False] | None:
    """A cell as text; None when empty; False for a value no ID can be.

    The JSON reader hands numbers over as text (see ``_jsonl_rows``); an int
    from any other caller is turned to text only when short enough that no
    digit limit applies."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() <= 128:
        value = str(value)
    if not isinstance(value, str):
        return False
    text = value.strip()
    return text or None


def _shown(text: str) -> str:
    """A value as a rejection quotes it: bounded, with the length of the rest."""
    if len(text) <= SHOWN_CHARS:
        return text
    return f"{text[:SHOWN_CHARS]}… ({len(text)} characters)"


def detect_format(path: Path, head: str) -> Literal["csv", "jsonl"]:
    if path.suffix.lower() in JSONL_SUFFIXES:
        return "jsonl"
    if path.suffix.lower() == ".csv":
        return "csv"
    return "jsonl" if head.lstrip().startswith("{") else "csv"


def _read_text(path: Path) -> str:
    try:
        with path.open("rb") as stream:
            if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
                raise ImportFileError(f"{path}: not a regular file")
            data = stream.read(MAX_IMPORT_BYTES + 1)
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot read: {exc.strerror}") from exc
    if len(data) > MAX_IMPORT_BYTES:
        raise ImportFileError(f"{path}: larger than {MAX_IMPORT_BYTES} bytes; split it")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ImportFileError(f"{path}: line {line} is not UTF-8 text") from exc


def _column_for(name: str) -> str | None:
    """The column a header name (or JSON key) stands for, if any."""
    key = "_".join(name.strip().lower().replace("-", " ").split())
    return next((column for column, aliases in COLUMN_ALIASES.items() if key in aliases), None)


def _column_map(header: list[str]) -> dict[int, str]:
    mapping: dict[int, str] = {}
    for index, name in enumerate(header):
        column = _column_for(name)
        if column is not None and column not in mapping.values():
            mapping[index] = column
    return mapping


def _csv_rows(text: str, source: str) -> Iterator[tuple[int, dict[str, Any] | Rejection]]:
    first_line = next((ln for ln in text.splitlines() if ln.strip()), "")
    try:
        dialect: Any = csv.Sniffer().sniff(first_line, delimiters=CSV_DELIMITERS)
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    header: dict[int, str] | None = None
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            if header is None:
                raise ImportFileError(f"{source}: line {reader.line_num}: {exc}") from exc
            # the reader goes on at the next line: the problem is this row's
            yield reader.line_num, Rejection(reader.line_num, "row.bad_csv", str(exc))
            continue
        if not any(cell.strip() for cell in cells):
            continue
        if header is None:
            header = _column_map(cells)
            if "bill_id" not in header.values():
                raise ImportFileError(
                    f"{source}: the header row (line {reader.line_num}) has no bill_id column"
                )
            if "payment_id" not in header.values() and "amount" not in header.values():
                raise ImportFileError(f"{source}: the header row has neither payment_id nor amount")
            continue
        yield (
            reader.line_num,
            {
                column: cells[index] if index < len(cells) else None
                for index, column in header.items()
            },
        )
    if header is None:
        raise ImportFileError(f"{source}: empty file (a header row is required)")


def _jsonl_rows(text: str) -> Iterator[tuple[int, dict[str, Any] | Rejection]]:
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            # numbers stay text: int() of a 5,000-digit literal raises, and
            # IDs are digit strings anyway
            obj = json.loads(raw, parse_int=str, parse_float=_float_marker)
        except RecursionError:
            yield number, Rejection(number, "row.not_json", "JSON nested too deeply")
            continue
        except ValueError:
            yield number, Rejection(number, "row.not_json", "not a valid JSON object")
            continue
        if not isinstance(obj, dict):
            yield number, Rejection(number, "row.not_json", "not a JSON object")
            continue
        row: dict[str, Any] = {}
        for key, value in obj.items():
            column = _column_for(str(key))
            if column is not None:
                row.setdefault(column, value)
        yield number, row


class _Float:
    """A JSON number with a fraction or exponent: no bill field can be one."""


def _float_marker(_text: str) -> _Float:
    return _Float()


def read_rows(path: Path, fmt: Format = "auto") -> Iterator[tuple[int, dict[str, Any] | Rejection]]:
    """(line number, row) for each data row of a file; rows that cannot even
    be parsed come as a Rejection."""
    text = _read_text(path)
    kind = detect_format(path, text[:256]) if fmt == "auto" else fmt
    if kind == "jsonl":
        return _jsonl_rows(text)
    return _csv_rows(text, str(path))


def import_bills(
    path: str | Path,
    store: Store | None,
    fmt: Format = "auto",
) -> ImportReport:
    """Validate every row of ``path`` and load the good ones into ``store``
    in one transaction. With ``store`` None, validate only (a dry run)."""
    source = Path(path)
    report = ImportReport(str(source), dry_run=store is None)
    first_seen: dict[str, int] = {}

    def good_rows() -> Iterator[dict[str, Any]]:
        for line, row in read_rows(source, fmt):
            report.rows += 1
            checked = row if isinstance(row, Rejection) else check_row(line, row)
            if isinstance(checked, GoodRow) and checked.bill_id in first_seen:
                earlier = first_seen[checked.bill_id]
                checked = Rejection(
                    line,
                    "row.duplicate",
                    f"bill ID {checked.bill_id} already given on line {earlier}",
                )
            if isinstance(checked, Rejection):
                report.rejected.append(checked)
                continue
            first_seen[checked.bill_id] = line
            yield {
                "bill_id": checked.bill_id,
                "payment_id": checked.payment_id,
                "amount_rials": checked.amount_rials,
            }

    if store is None:
        for _ in good_rows():
            pass
    else:
        report.counts = store.upsert_bills(good_rows())
    return report
