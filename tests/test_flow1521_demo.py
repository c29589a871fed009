"""``daemon1521 demo``: two scripted calls on an emulated line, printed as heard."""

from __future__ import annotations

from click.testing import CliRunner

from daemon1521.audio.prompts import PromptCatalog
from daemon1521.cli import main
from daemon1521.testbed.site import DEMO_CALLER, sample_bills


def test_demo_prints_both_calls_and_exits_cleanly() -> None:
    result = CliRunner().invoke(main, ["demo", "--speed", "12", "--personality", "usr-5637"])
    assert result.exit_code == 0, result.output
    out = result.output
    catalog = PromptCatalog("fa")
    first, _, second = out.partition("Call 2:")
    assert "12x real time" in out and "Call 1:" in first
    assert catalog.text("welcome") in first and catalog.text("welcome") in second
    assert catalog.text("offer_remember_bill") in first
    assert catalog.text("remembered_bill_is") in second
    assert catalog.text("remembered_bill_is") not in first
    assert catalog.text("goodbye") in second
    assert f"pressed {sample_bills()[0].bill_id}#" in first
    assert out.count("record: outcome not_paid, last state goodbye") == 2
    assert f"Remembered for {DEMO_CALLER}: {sample_bills()[0].bill_id}" in out
