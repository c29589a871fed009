"""``daemon1521 bills import`` / ``bills check``, and the importer behind them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from daemon1521.billing.ids import make_bill_id, make_payment_id
from daemon1521.billing.importer import ImportFileError, check_row, import_bills
from daemon1521.billing.store import STORE_ENV, Store
from daemon1521.cli import main

B1 = make_bill_id(1001, 321)
B2 = make_bill_id(1002, 321)
B3 = make_bill_id(1003, 321)
P1 = make_payment_id(B1, 17_000, 4, 1)
P2 = make_payment_id(B2, 1_250_000, 4, 1)
LANDLINE = "7748317800142"


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, list(args), env=env)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


def stored(db_path: Path, bill_id: str):
    with Store.open(db_path) as store:
        return store.get_bill(bill_id)


# ----------------------------------------------------------------------- import


def test_import_loads_good_rows_and_reports_bad_ones(tmp_path: Path, db_path: Path):
    csv_file = write(
        tmp_path / "bills.csv",
        "bill_id,payment_id,amount\n"
        f"{B1},{P1},17000\n"  # line 2: good
        f"{B2},{P2},\n"  # line 3: good, amount from the payment ID
        f"{B1[:-1]}9,{P1},17000\n"  # line 4: bad check digit
        f"{LANDLINE},1770160,17000\n"  # line 5: not electricity
        f"{B3},{P1},17000\n"  # line 6: payment ID of another bill
        f"{B3},,0\n"  # line 7: good, no debt
        "\n"
        f"{B1},{P1},17000\n",  # line 9: duplicate
    )
    result = run("bills", "import", str(csv_file), "--store", str(db_path))
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert any(ln.startswith("line 4:") and "bill_id.check_digit" in ln for ln in lines)
    assert any(ln.startswith("line 5:") and "bill_id.not_electricity" in ln for ln in lines)
    assert any(ln.startswith("line 6:") and "payment_id.check_digit_2" in ln for ln in lines)
    assert any(
        ln.startswith("line 9:") and "row.duplicate" in ln and "line 2" in ln for ln in lines
    )
    assert lines[-1] == (
        f"{csv_file}: 7 rows, 3 loaded (3 new, 0 changed, 0 unchanged), 4 rejected"
    )
    assert stored(db_path, B1).amount_rials == 17_000
    assert stored(db_path, B2).amount_rials == 1_250_000
    bill3 = stored(db_path, B3)
    assert bill3.amount_rials == 0 and bill3.payment_id is None


def test_import_is_safe_to_rerun(tmp_path: Path, db_path: Path):
    csv_file = write(tmp_path / "bills.csv", f"bill_id,payment_id\n{B1},{P1}\n{B2},{P2}\n")
    first = run("bills", "import", str(csv_file), "--store", str(db_path))
    assert first.exit_code == 0, first.output
    assert "2 loaded (2 new, 0 changed, 0 unchanged), 0 rejected" in first.output
    again = run("bills", "import", str(csv_file), "--store", str(db_path))
    assert again.exit_code == 0
    assert "2 loaded (0 new, 0 changed, 2 unchanged)" in again.output


def test_import_json_report_and_jsonl_input(tmp_path: Path, db_path: Path):
    jsonl = write(
        tmp_path / "bills.jsonl",
        json.dumps({"bill_id": B1, "payment_id": P1, "amount": 17000})
        + "\n"
        + json.dumps({"bill_id": int(B2), "payment_id": int(P2)})
        + "\n"
        + "{not json\n"
        + json.dumps({"bill_id": B3, "payment_id": P1, "amount": 1.5})
        + "\n",
    )
    result = run("bills", "import", str(jsonl), "--store", str(db_path), "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert (report["rows"], report["accepted"], report["inserted"]) == (4, 2, 2)
    assert [(r["line"], r["code"]) for r in report["rejected"]] == [
        (3, "row.not_json"),
        (4, "row.bad_value"),
    ]
    assert stored(db_path, B2).amount_rials == 1_250_000


def test_import_store_from_environment(tmp_path: Path, db_path: Path):
    csv_file = write(tmp_path / "bills.csv", f"bill_id,payment_id\n{B1},{P1}\n")
    result = run("bills", "import", str(csv_file), env={STORE_ENV: str(db_path)})
    assert result.exit_code == 0, result.output
    assert stored(db_path, B1) is not None


def test_dry_run_loads_nothing(tmp_path: Path, db_path: Path):
    csv_file = write(tmp_path / "bills.csv", f"bill_id,payment_id\n{B1},{P1}\n")
    result = run("bills", "import", str(csv_file), "--store", str(db_path), "--dry-run")
    assert result.exit_code == 0
    assert "1 valid (not loaded: dry run)" in result.output
    assert not db_path.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("payment_id,amount\n1,2\n", "no bill_id column"),
        ("", "empty file"),
        ("bill_id\n" + B1 + "\n", "neither payment_id nor amount"),
    ],
)
def test_unusable_files_exit_2(tmp_path: Path, db_path: Path, content: str, message: str):
    csv_file = write(tmp_path / "bills.csv", content)
    result = run("bills", "import", str(csv_file), "--store", str(db_path))
    assert result.exit_code == 2
    assert message in result.output


def test_non_utf8_and_missing_files_exit_2(tmp_path: Path, db_path: Path):
    bad = tmp_path / "bills.csv"
    bad.write_bytes(f"bill_id,payment_id\n{B1},{P1}\n".encode() + b"\xff\xfe,1\n")
    result = run("bills", "import", str(bad), "--store", str(db_path))
    assert result.exit_code == 2 and "line 3 is not UTF-8" in result.output
    assert stored(db_path, B1) is None  # nothing loaded
    missing = run("bills", "import", str(tmp_path / "absent.csv"), "--store", str(db_path))
    assert missing.exit_code == 2 and "cannot read" in missing.output


def test_unavailable_store_exits_2(tmp_path: Path):
    csv_file = write(tmp_path / "bills.csv", f"bill_id,payment_id\n{B1},{P1}\n")
    result = run(
        "bills", "import", str(csv_file), "--store", str(tmp_path / "nodir" / "x.db"), "--json"
    )
    assert result.exit_code == 2
    assert "cannot open the store" in json.loads(result.stdout)["error"]


def test_import_help_documents_exit_codes():
    result = run("bills", "import", "--help")
    assert result.exit_code == 0
    assert "Exit status" in result.output and "rejected" in result.output
    assert STORE_ENV in result.output


# ---------------------------------------------------------------------- importer


def test_persian_headers_semicolons_bom_and_digits(tmp_path: Path, db_path: Path):
    persian_b1 = B1.translate(str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹"))
    path = tmp_path / "export.txt"
    path.write_text(
        f"\ufeffشناسه قبض;شناسه پرداخت;مبلغ;منطقه\n{persian_b1};{P1};17000;3\n", encoding="utf-8"
    )
    with Store.open(db_path) as store:
        report = import_bills(path, store)
        assert report.ok and report.counts.inserted == 1
        assert store.get_bill(B1).amount_rials == 17_000  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("row", "code"),
    [
        ({"bill_id": B1, "payment_id": P1, "amount": "18000"}, "row.amount_mismatch"),
        ({"bill_id": B1, "payment_id": P1, "amount": "17,000"}, "row.amount_invalid"),
        ({"bill_id": B1, "payment_id": None, "amount": "17000"}, "row.payment_id_missing"),
        ({"bill_id": B1, "payment_id": "", "amount": ""}, "row.payment_id_missing"),
        ({"bill_id": "", "payment_id": P1}, "row.bill_id_missing"),
        ({"bill_id": B1, "payment_id": "123"}, "payment_id.too_short"),
        ({"bill_id": LANDLINE, "payment_id": "1770160"}, "bill_id.not_electricity"),
        ({"bill_id": True, "payment_id": P1}, "row.bad_value"),
    ],
)
def test_row_rejections(row: dict[str, object], code: str):
    result = check_row(7, row)
    assert getattr(result, "code", None) == code
    assert result.line == 7


def test_amount_mismatch_message_gives_both_amounts():
    result = check_row(2, {"bill_id": B1, "payment_id": P1, "amount": "18000"})
    assert "18,000" in result.message and "17,000" in result.message  # type: ignore[union-attr]


def test_import_bills_raises_for_file_errors(tmp_path: Path):
    with pytest.raises(ImportFileError):
        import_bills(write(tmp_path / "x.csv", "amount\n1\n"), None)


# ------------------------------------------------------------------------ check


def test_check_worked_example():
    result = run("bills", "check", LANDLINE, "1770160")
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"bill ID {LANDLINE}: valid" in out
    assert "service type: 4 landline telephone" in out
    assert "company code: 001" in out
    assert "not an electricity bill" in out
    assert "payment ID 1770160: valid" in out
    assert "amount: 17,000 rials" in out


def test_check_json():
    result = run("bills", "check", B1, P1, "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["ok"] is True
    assert data["bill"]["service_type"]["key"] == "electricity"
    assert data["bill"]["electricity"] is True
    assert data["bill"]["company_code"] == "321"
    assert data["payment"]["amount_rials"] == 17_000


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["7748317800143"], "bill_id.check_digit"),
        (["12345"], "bill_id.too_short"),
        ([LANDLINE, "1770161"], "payment_id.check_digit_2"),
        ([LANDLINE, "1770150"], "payment_id.check_digit_1"),
    ],
)
def test_check_invalid(args: list[str], code: str):
    result = run("bills", "check", *args)
    assert result.exit_code == 1
    assert "invalid" in result.output and code in result.output
    data = json.loads(run("bills", "check", *args, "--json").output)
    assert data["ok"] is False
    reasons = [data["bill"]["reason"], (data.get("payment") or {}).get("reason")]
    assert code in [r["code"] for r in reasons if r]


def test_check_help_documents_exit_codes():
    result = run("bills", "check", "--help")
    assert "Exit status" in result.output and "0  valid" in result.output
