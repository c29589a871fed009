"""What ``daemon1521 status`` prints of the store."""

from __future__ import annotations

from daemon1521.commands.status import render

LINE = {"name": "line1", "state": "idle", "calls_today": 3}


def reply(store: dict) -> dict:
    return {
        "lines": [LINE],
        "status": "1 line: 1 idle",
        "totals": {"calls_today": 3},
        "store": store,
    }


def test_a_store_problem_is_one_line_under_the_table() -> None:
    shown = render(
        reply(
            {
                "ok": False,
                "problem": "cannot write to the database: database is locked",
                "queued": 12,
                "spooled": 9,
            }
        )
    )
    (line,) = [text for text in shown.splitlines() if text.startswith("STORE:")]
    assert line == (
        "STORE: cannot write to the database: database is locked"
        " (12 record(s) queued, 9 in the spool)"
    )


def test_a_healthy_store_adds_nothing() -> None:
    shown = render(reply({"ok": True, "problem": None, "queued": 0, "spooled": 0}))
    assert "STORE" not in shown and shown.endswith("3 call(s) today")
