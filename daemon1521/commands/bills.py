"""``daemon1521 bills``: load the utility's bills and check bill/payment IDs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from daemon1521.billing.ids import (
    BillIdCheck,
    PaymentIdCheck,
    validate_bill_id,
    validate_payment_id,
)
from daemon1521.billing.importer import Format, ImportFileError, import_bills
from daemon1521.billing.store import DEFAULT_STORE_PATH, STORE_ENV, Store, StoreUnavailable

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_FAILED = 2


@click.group()
def bills() -> None:
    """Bills: import the utility's billing data, check IDs."""


@bills.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--store",
    "store_path",
    envvar=STORE_ENV,
    default=DEFAULT_STORE_PATH,
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Database file (environment: {STORE_ENV}).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "csv", "jsonl"]),
    default="auto",
    show_default=True,
    help="Input format; auto goes by the file name, then the first character.",
)
@click.option("--dry-run", is_flag=True, help="Validate only; load nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def import_cmd(file: Path, store_path: Path, fmt: Format, dry_run: bool, as_json: bool) -> None:
    """Load bills from FILE: CSV with a header row, or JSON lines.

    Columns: bill_id, payment_id, amount (rials; optional when the payment
    ID gives it; payment_id may be empty only for a bill with amount 0).
    Every row is validated; the good rows are loaded in one transaction, each
    rejected row is reported with its line number and reason. Re-running an
    import is safe: unchanged rows are left alone.

    \b
    Exit status:
      0  every row was loaded (or, with --dry-run, is valid)
      1  some rows were rejected; all the others were loaded
      2  nothing was loaded: the file or the store cannot be used
    """
    try:
        if dry_run:
            report = import_bills(file, None, fmt)
        else:
            with Store.open(store_path) as store:
                report = import_bills(file, store, fmt)
    except (ImportFileError, StoreUnavailable) as exc:
        if as_json:
            click.echo(json.dumps({"file": str(file), "error": str(exc)}, ensure_ascii=False))
        else:
            click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False))
    else:
        for rejection in report.rejected:
            click.echo(f"line {rejection.line}: {rejection.message} [{rejection.code}]")
        click.echo(report.summary())
    sys.exit(EXIT_OK if report.ok else EXIT_INVALID)


@bills.command("check")
@click.argument("bill_id")
@click.argument("payment_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def check_cmd(bill_id: str, payment_id: str | None, as_json: bool) -> None:
    """Check BILL_ID (and PAYMENT_ID against it): validity, the reason when
    invalid, service type, company code, and the amount a payment ID carries.

    \b
    Exit status:
      0  valid (a valid bill ID of another service than electricity included)
      1  invalid
    """
    bill = validate_bill_id(bill_id)
    payment = validate_payment_id(bill_id, payment_id) if payment_id is not None else None
    ok = bill.ok and (payment is None or payment.ok)
    if as_json:
        out: dict[str, object] = {"ok": ok, "bill": _bill_dict(bill)}
        if payment is not None:
            out["payment"] = _payment_dict(payment)
        click.echo(json.dumps(out, ensure_ascii=False))
    else:
        for line in _bill_lines(bill):
            click.echo(line)
        if payment is not None and bill.ok:
            for line in _payment_lines(payment):
                click.echo(line)
    sys.exit(EXIT_OK if ok else EXIT_INVALID)


def _bill_dict(bill: BillIdCheck) -> dict[str, object]:
    return {
        "given": bill.given,
        "ok": bill.ok,
        "reason": bill.reason.as_dict() if bill.reason else None,
        "bill_id": bill.bill_id,
        "service_type": bill.service_type.as_dict() if bill.service_type else None,
        "electricity": bill.is_electricity,
        "company_code": bill.company_code,
        "file_code": bill.file_code,
    }


def _payment_dict(payment: PaymentIdCheck) -> dict[str, object]:
    return {
        "given": payment.given,
        "ok": payment.ok,
        "reason": payment.reason.as_dict() if payment.reason else None,
        "payment_id": payment.payment_id,
        "amount_rials": payment.amount_rials,
        "year_code": payment.year_code,
        "period_code": payment.period_code,
        "c1": payment.c1,
        "c2": payment.c2,
    }


def _bill_lines(bill: BillIdCheck) -> list[str]:
    if not bill.ok:
        assert bill.reason is not None
        return [f"bill ID {bill.given}: invalid: {bill.reason.text} [{bill.reason.code}]"]
    assert bill.service_type is not None
    service = bill.service_type
    lines = [
        f"bill ID {bill.bill_id}: valid",
        f"  service type: {service.code} {service.name} ({service.name_fa})",
        f"  company code: {bill.company_code}",
        f"  file code: {bill.file_code}",
    ]
    if not bill.is_electricity:
        lines.append("  note: not an electricity bill; 1521 serves electricity bills only")
    return lines


def _payment_lines(payment: PaymentIdCheck) -> list[str]:
    if not payment.ok:
        assert payment.reason is not None
        return [
            f"payment ID {payment.given}: invalid: {payment.reason.text} [{payment.reason.code}]"
        ]
    return [
        f"payment ID {payment.payment_id}: valid",
        f"  amount: {payment.amount_rials:,} rials",
        f"  year code: {payment.year_code}, period code: {payment.period_code:02d}",
    ]
