"""Fault: one hostile row in a bill import is that row's rejection, never the
whole file's loss (issue 9, item 3), and the import parsers never crash."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon1521.billing.ids import make_bill_id, make_payment_id
from daemon1521.billing.importer import ImportFileError, import_bills
from daemon1521.billing.store import Store
from daemon1521.cli import main

B1 = make_bill_id(1001, 321)
B2 = make_bill_id(1002, 321)
P1 = make_payment_id(B1, 17_000, 4, 1)
P2 = make_payment_id(B2, 1_250_000, 4, 1)
HUGE = "9" * 5000


def _import(path: Path, db: Path):
    return CliRunner().invoke(main, ["bills", "import", str(path), "--store", str(db), "--json"])


def _loaded(db: Path) -> list[str]:
    with Store.open(db) as store:
        return [b for b in (B1, B2) if store.get_bill(b) is not None]


def test_csv_row_with_a_5000_digit_amount_is_rejected_alone(tmp_path: Path):
    csv_file = tmp_path / "bills.csv"
    csv_file.write_text(
        f"bill_id,payment_id,amount\n{B1},{P1},17000\n{B2},{P2},{HUGE}\n{B2},{P2},\n",
        encoding="utf-8",
    )
    result = _import(csv_file, tmp_path / "store.db")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    report = json.loads(result.output)
    assert report["accepted"] == 2
    [rejection] = report["rejected"]
    assert rejection["line"] == 3
    assert rejection["code"] == "row.amount_invalid"
    assert len(rejection["message"]) < 200
    assert _loaded(tmp_path / "store.db") == [B1, B2]


def test_csv_row_with_an_oversized_field_is_rejected_alone(tmp_path: Path):
    csv_file = tmp_path / "bills.csv"
    csv_file.write_text(
        f"bill_id,payment_id,amount\n{B1},{P1},17000\n{'1' * 200_000},{P2},\n{B2},{P2},\n",
        encoding="utf-8",
    )
    result = _import(csv_file, tmp_path / "store.db")
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    assert [(r["line"], r["code"]) for r in report["rejected"]] == [(3, "row.bad_csv")]
    assert _loaded(tmp_path / "store.db") == [B1, B2]


def test_jsonl_rows_with_5000_digit_numbers_are_rejected_alone(tmp_path: Path):
    jsonl = tmp_path / "bills.jsonl"
    jsonl.write_text(
        "\n".join(
            [
                json.dumps({"bill_id": B1, "payment_id": P1}),
                f'{{"bill_id": "{B2}", "payment_id": "{P2}", "amount": {HUGE}}}',
                f'{{"bill_id": {HUGE}, "payment_id": "{P2}"}}',
                f'{{"bill_id": "{B2}", "payment_id": "{P2}", "amount": "{HUGE}"}}',
                "[" * 100_000,
                json.dumps({"bill_id": B2, "payment_id": P2}),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    result = _import(jsonl, tmp_path / "store.db")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    report = json.loads(result.output)
    assert report["accepted"] == 2
    assert [r["line"] for r in report["rejected"]] == [2, 3, 4, 5]
    assert all(len(r["message"]) < 200 for r in report["rejected"])
    assert _loaded(tmp_path / "store.db") == [B1, B2]


_cell = st.one_of(
    st.text(max_size=40),
    st.integers().map(str),
    st.sampled_from([B1, B2, P1, P2, HUGE, "", "۰۱۲۳", "1e400", "-5", "0"]),
)
_value = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | _cell,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(st.lists(_cell, min_size=0, max_size=4), max_size=6),
    delimiter=st.sampled_from(",;\t"),
)
def test_csv_parser_rejects_rows_cleanly(tmp_path_factory, rows, delimiter):
    path = tmp_path_factory.mktemp("csv") / "bills.csv"
    lines = ["bill_id,payment_id,amount"] + [delimiter.join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    try:
        report = import_bills(path, None)
    except ImportFileError as exc:
        assert str(exc)
        return
    assert report.accepted + len(report.rejected) == report.rows
    assert all(len(r.message) < 300 for r in report.rejected)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    objects=st.lists(
        st.dictionaries(st.sampled_from(["bill_id", "payment_id", "amount", "x"]), _value),
        max_size=5,
    ),
    junk=st.lists(st.binary(max_size=30), max_size=3),
)
def test_jsonl_parser_rejects_rows_cleanly(tmp_path_factory, objects, junk):
    path = tmp_path_factory.mktemp("jsonl") / "bills.jsonl"
    lines = [json.dumps(o).encode() for o in objects] + [j.replace(b"\n", b" ") for j in junk]
    path.write_bytes(b"\n".join(lines) + b"\n")
    try:
        report = import_bills(path, None)
    except ImportFileError as exc:
        assert str(exc)
        return
    assert report.accepted + len(report.rejected) == report.rows
    assert all(len(r.message) < 300 for r in report.rejected)
