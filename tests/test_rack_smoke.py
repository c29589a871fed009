"""The rack benchmark runs end to end: two lines for a few seconds, each in its
own test-bed process, so the processes' protocol is exercised too.

It asserts only that the run completes and reports every figure; speeds and
latencies are the benchmark's to print, never a test's to judge.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

RACK = Path(__file__).resolve().parents[1] / "benchmarks" / "rack.py"
TABLE_ROWS = ("key to prompt", "underruns", "emulator", "daemon CPU", "daemon RSS", "daemon fds")


def test_two_lines_for_a_few_seconds_print_the_table_and_json():
    args = ["--lines", "2", "--duration", "4", "--idle", "1", "--testbeds", "2", "--json"]
    run = subprocess.run(
        [sys.executable, str(RACK), *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    for row in TABLE_ROWS:
        assert any(line.startswith(row) for line in lines), row
    figures = json.loads(lines[-1])
    assert figures["lines"] == 2
    for key in ("key_to_prompt_ms", "barge_in_stop_ms", "ring_to_off_hook_ms", "underruns"):
        assert key in figures
    daemon = figures["daemon"]
    assert daemon["exit_code"] == 0
    for key in ("cpu_load_pct", "rss_idle_mib", "rss_peak_mib", "fds_end", "rss_slope_mib_per_h"):
        assert key in daemon
    assert "kept_real_time" in figures["emulator"]
    assert figures["emulator"]["processes"] == 2
